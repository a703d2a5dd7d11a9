"""The webhook sensor example runs end to end: simulator send -> smsSend webhook -> receiver -> sensor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_iterable.testing import IterableSimulator
from tests.conftest import REPO_ROOT
from tests.sensors.conftest import WEBHOOK_SECRET, Receiver

EXAMPLE = REPO_ROOT / "example_dags" / "example_iterable_webhook_sensor.py"


@pytest.mark.slow
def test_webhook_sensor_example_wakes_on_the_simulators_sms_send(
    receiver: Receiver, run_dag: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    webhook_url = f"{receiver.url}/webhooks/iterable_default/system"
    with IterableSimulator(
        webhook_url=webhook_url, webhook_headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"}
    ) as sim:
        connection = sim.connection_json(webhook_secrets=[WEBHOOK_SECRET])
        monkeypatch.setenv("AIRFLOW_CONN_ITERABLE_DEFAULT", connection)  # the receiver's view
        process = run_dag(
            EXAMPLE.read_text(), "example_iterable_webhook_sensor", AIRFLOW_CONN_ITERABLE_DEFAULT=connection
        )
        result = process.result(timeout=120)
        assert result["tasks"] == {
            "send_sms": "success",
            "wait_for_sms_send": "success",
            "report": "success",
        }, process.output()[-5000:]
        assert len(sim.sends) == 1 and sim.sends[0]["recipientEmail"] == "ada@example.com"
        # One smsSend webhook; on a busy machine its first attempt may time out while the
        # receiver starts, and the simulator retries it as Iterable would (the dedupe absorbs it).
        deliveries = sim.webhook_deliveries
        assert {json.dumps(body, sort_keys=True) for _, body in deliveries} == {
            json.dumps(deliveries[-1][1], sort_keys=True)
        }
        status, body = deliveries[-1]
        assert status == 200 and body["eventName"] == "smsSend"
        assert f"Iterable sent the SMS: message {body['dataFields']['messageId']} to ada@example.com" in (
            process.output()
        )
