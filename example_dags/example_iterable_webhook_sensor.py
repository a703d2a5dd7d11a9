"""Text a user, then wait (deferred, no worker slot held) for Iterable's ``smsSend`` webhook.

Iterable reports each send with a system webhook. Point the project's system webhook at
``https://<airflow-api-server>/iterable/webhooks/iterable_default/system`` with the secret from
the connection's ``webhook_secrets`` extra in its ``Authorization`` header; the receiver stores
every delivery in the event queue and the sensor wakes on the matching one. The sensor only
counts events received since this DAG run started, so a webhook that arrives before the sensor
starts is not missed.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param, task

from airflow_provider_iterable.operators import IterableSendSmsOperator
from airflow_provider_iterable.sensors import IterableSystemWebhookSensor

with DAG(
    dag_id="example_iterable_webhook_sensor",
    description="Send an SMS and wait for Iterable's smsSend webhook",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["example", "iterable", "webhooks"],
    # Templates render to native values: the campaign id reaches the send as a number.
    render_template_as_native_obj=True,
    params={
        "email": Param("ada@example.com", type="string", description="Who gets the SMS"),
        "campaign_id": Param(2001, type="integer", description="An SMS campaign of the project"),
    },
) as dag:
    send = IterableSendSmsOperator(
        task_id="send_sms",
        campaign_id="{{ params.campaign_id }}",
        recipient_email="{{ params.email }}",
        data_fields={"reason": "example"},
    )

    delivered = IterableSystemWebhookSensor(
        task_id="wait_for_sms_send",
        event_name="smsSend",
        match={"email": "{{ params.email }}", "dataFields.campaignId": "{{ params.campaign_id }}"},
        expected_fields=["dataFields.messageId"],
        xcom_fields=["id", "received_at", "email", "payload.dataFields"],
        timeout=dt.timedelta(hours=1).total_seconds(),
    )

    @task
    def report(event: dict) -> None:
        """Print what Iterable reported (downstream tasks would act on it)."""
        print(
            f"Iterable sent the SMS: message {event['payload']['dataFields']['messageId']} "
            f"to {event['email']} (queue event {event['id']}, received {event['received_at']})"
        )

    send >> delivered
    report(delivered.output)
