"""A deferred sensor's ``timeout`` holds under ``dag.test()``, which runs the trigger inline.

Airflow's triggerer enforces a defer timeout; ``dag.test()`` does not (it waits for the trigger's
first event, forever). The trigger carries the sensor's deadline in its arguments and ends the
wait itself, so the timeout means the same wherever the trigger runs.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

TIMEOUT_DAG = """
from datetime import datetime
from airflow.sdk import DAG
from airflow_provider_iterable.sensors import IterableSystemWebhookSensor

with DAG("sensor_deadline", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    IterableSystemWebhookSensor(
        task_id="times_out", event_name="smsSend", match={"email": "nobody@example.com"}, timeout=3,
    )
    IterableSystemWebhookSensor(
        task_id="soft_fails", event_name="smsSend", match={"email": "nobody@example.com"}, timeout=3,
        soft_fail=True,
    )
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_deferred_sensor_times_out_under_dag_test(run_dag: Any) -> None:
    started = time.monotonic()
    process = run_dag(TIMEOUT_DAG, "sensor_deadline")
    # Hard limit: a dag.test() that ignores the timeout hangs and must be killed, not waited for.
    result = process.result(timeout=150)
    output = process.output()
    assert output.count("Waiting for an Iterable webhook") == 2, output[-4000:]
    assert result["tasks"] == {"times_out": "failed", "soft_fails": "skipped"}, output[-4000:]
    assert "AirflowSensorTimeout" in output
    assert time.monotonic() - started >= 3  # ended by the timeout, not at once
