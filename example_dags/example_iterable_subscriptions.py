"""Keep Iterable's subscriptions in step with the preferences your own systems hold.

For one user (a DAG run per preference change, e.g. triggered through the REST API with
``conf={"email": ..., "list_ids": [...]}``): read the profile, set the complete set of lists the
user should be on, and take everyone in an opt-out export off the newsletter list.

Iterable's ``updateSubscriptions`` **replaces** each field it receives, so
``IterableUpdateUserSubscriptionsOperator`` sends only the fields you set, and each must hold the
complete desired value.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Param

from airflow_provider_iterable.operators import (
    IterableGetUserByEmailOperator,
    IterableListProjectListsOperator,
    IterableRemoveSubscribersFromListOperator,
    IterableUpdateUserSubscriptionsOperator,
)

with DAG(
    dag_id="example_iterable_subscriptions",
    description="Sync one user's list memberships and apply an opt-out export",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["example", "iterable"],
    params={
        "email": Param("ada@example.com", type="string"),
        "list_ids": Param([1], type="array", description="Every list the user should be on"),
        "newsletter_list_id": Param(1, type="integer"),
        "opt_out_file": Param(
            os.environ.get("ITERABLE_EXAMPLE_OPT_OUT_FILE", "s3://my-crm-exports/opt_outs.csv"),
            type="string",
            description="CSV with an email column: users who opted out of the newsletter",
        ),
    },
) as dag:
    lists = IterableListProjectListsOperator(task_id="project_lists", list_type="Standard")

    # Only what downstream tasks need reaches XCom (it lives in Airflow's database).
    profile = IterableGetUserByEmailOperator(
        task_id="get_profile",
        email="{{ params.email }}",
        xcom_fields=["email", "userId", "emailListIds"],
    )

    set_lists = IterableUpdateUserSubscriptionsOperator(
        task_id="set_lists",
        email="{{ params.email }}",
        email_list_ids="{{ params.list_ids | tojson }}",
    )

    opt_outs = IterableRemoveSubscribersFromListOperator(
        task_id="apply_opt_outs",
        list_id="{{ params.newsletter_list_id }}",
        subscribers_file="{{ params.opt_out_file }}",
        # Users with unknown addresses in the export should not fail the whole run.
        fail_on_partial_failure=False,
    )

    lists >> profile >> set_lists >> opt_outs
