"""Onboard new users: load them into Iterable, put them on a list, record it, text a welcome.

Copy this DAG and change the ``params`` defaults (or pass them when triggering). It uses the
``iterable_default`` connection: password = your Iterable API key, extra ``{"region": "us"}``
or ``"eu"``.

``users_file`` is a JSON Lines file with one user per line in Iterable's shape, e.g.
``{"email": "ada@example.com", "dataFields": {"firstName": "Ada", "plan": "pro"}}``; a local path or
any URI Airflow's ObjectStoragePath opens (``s3://bucket/new_users.jsonl`` with an ``aws_default``
connection, for example).
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Param

from airflow_provider_iterable.operators import (
    IterableAddSubscribersToListOperator,
    IterableBulkUpsertUsersOperator,
    IterableCreateListOperator,
    IterableSendSmsOperator,
    IterableTrackEventOperator,
)

# The run's day. ``{{ ds }}`` exists only when the run has a logical date, which a run triggered
# through the REST API or by an asset may lack; ``run_after`` is set on every run.
RUN_DAY = "{{ dag_run.run_after | ds }}"

with DAG(
    dag_id="example_iterable_onboarding",
    description="Bulk-load new users into Iterable, add them to a list, track it and send a welcome SMS",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["example", "iterable"],
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=1)},
    params={
        "users_file": Param(
            os.environ.get("ITERABLE_EXAMPLE_USERS_FILE", "s3://my-crm-exports/new_users.jsonl"),
            type="string",
            description="JSON Lines file of new users (local path or object storage URI)",
        ),
        "welcome_email": Param("ada@example.com", type="string", description="Who gets the welcome SMS"),
        "sms_campaign_id": Param(2001, type="integer", description="Iterable SMS campaign to send"),
    },
) as dag:
    load_users = IterableBulkUpsertUsersOperator(
        task_id="load_users",
        users_file="{{ params.users_file }}",
        create_new_fields=True,
    )

    # reuse_existing: a re-run (or a retry) finds today's list instead of creating a second one.
    create_list = IterableCreateListOperator(
        task_id="create_list",
        name=f"Onboarding {RUN_DAY}",
        description=f"Users onboarded by Airflow on {RUN_DAY}",
        reuse_existing=True,
    )

    subscribe = IterableAddSubscribersToListOperator(
        task_id="subscribe_new_users",
        list_id=create_list.output,
        subscribers_file="{{ params.users_file }}",
    )

    track = IterableTrackEventOperator(
        task_id="track_onboarded",
        event_name="onboarded",
        email="{{ params.welcome_email }}",
        data_fields={
            "listId": "{{ ti.xcom_pull(task_ids='create_list') }}",
            "usersLoaded": "{{ ti.xcom_pull(task_ids='load_users')['successCount'] }}",
        },
    )

    send_sms = IterableSendSmsOperator(
        task_id="send_welcome_sms",
        campaign_id="{{ params.sms_campaign_id }}",
        recipient_email="{{ params.welcome_email }}",
        data_fields={"listName": f"Onboarding {RUN_DAY}"},
    )

    load_users >> create_list >> subscribe >> track >> send_sms
