"""Start journeys from a pipeline: for a few VIPs, for a whole list, and with a tracked event trail.

Shows dynamic task mapping (one journey trigger per user, each its own task instance with its own
retry), a transactional e-mail whose ``metadata`` comes back in Iterable's ``emailSend`` webhook,
and bulk events from a JSON Lines file.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Param, task

from airflow_provider_iterable.operators import (
    IterableSendEmailOperator,
    IterableTrackBulkEventsOperator,
    IterableTriggerJourneyOperator,
    IterableUpsertUserOperator,
)

# The run's day. ``{{ ds }}`` exists only when the run has a logical date, which a run triggered
# through the REST API or by an asset may lack; ``run_after`` is set on every run.
RUN_DAY = "{{ dag_run.run_after | ds }}"

with DAG(
    dag_id="example_iterable_journey",
    description="Trigger Iterable journeys per user (mapped) and per list",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["example", "iterable"],
    params={
        "workflow_id": Param(3001, type="integer", description="The journey's id (from its editor URL)"),
        "vip_list_id": Param(1, type="integer"),
        "email_campaign_id": Param(1001, type="integer"),
        "events_file": Param(
            os.environ.get("ITERABLE_EXAMPLE_EVENTS_FILE", "s3://my-crm-exports/events.jsonl"),
            type="string",
        ),
    },
) as dag:

    @task
    def vip_emails() -> list[str]:
        """Return the users to start the journey for (in practice: a query against your warehouse)."""
        return ["ada@example.com", "grace@example.com"]

    mark = IterableUpsertUserOperator(
        task_id="mark_vip",
        email="ada@example.com",
        data_fields={"vip": True, "vipSince": RUN_DAY},
    )

    per_user = IterableTriggerJourneyOperator.partial(
        task_id="start_journey_per_user",
        workflow_id="{{ params.workflow_id }}",
        data_fields={"source": "airflow", "run": "{{ run_id }}"},
    ).expand(email=vip_emails())

    per_list = IterableTriggerJourneyOperator(
        task_id="start_journey_for_list",
        workflow_id="{{ params.workflow_id }}",
        list_id="{{ params.vip_list_id }}",
    )

    email = IterableSendEmailOperator(
        task_id="send_vip_email",
        campaign_id="{{ params.email_campaign_id }}",
        recipient_email="ada@example.com",
        metadata={"dagRunId": "{{ run_id }}"},
    )

    events = IterableTrackBulkEventsOperator(task_id="track_events", events_file="{{ params.events_file }}")

    mark >> per_user >> per_list >> email >> events
