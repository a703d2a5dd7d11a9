"""Run a DAG each time a journey reaches its webhook tile (event-driven scheduling).

In the journey editor, add a Webhook tile that calls
``https://<airflow-api-server>/iterable/webhooks/iterable_default/journeys/3001`` (3001 being the
journey's id) with the connection's webhook secret. The asset below has an ``AssetWatcher``
whose trigger waits in Airflow's triggerer for those webhooks; each one becomes an asset event,
and the asset event schedules this DAG. Airflow may fold several events into one run, so the task
loops over all of them; delivery is at-least-once, so ``webhook_events`` drops repeated ids.

The same asset in Airflow's own terms::

    Asset(
        "iterable_journey_3001",
        watchers=[
            AssetWatcher(
                name="iterable_journey_3001_watcher",
                trigger=IterableWebhookTrigger(workflow_id=3001, kind="journey"),
            )
        ],
    )
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from airflow_provider_iterable.assets import iterable_webhook_asset, webhook_events

journey_reached = iterable_webhook_asset("iterable_journey_3001", workflow_id=3001, kind="journey")

with DAG(
    dag_id="example_iterable_event_driven",
    description="React to an Iterable journey webhook",
    schedule=[journey_reached],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["example", "iterable", "webhooks"],
) as dag:

    @task
    def handle(*, triggering_asset_events=None) -> list[int]:
        """Act on each journey webhook that triggered this run; return their queue ids."""
        handled = []
        for event in webhook_events(triggering_asset_events[journey_reached]):
            print(
                f"Journey {event['workflow_id']} reached its webhook for {event['email']}: {event['payload']}"
            )
            handled.append(event["id"])
        return handled

    handle()
