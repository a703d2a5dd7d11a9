"""The webhook sensors: unit checks of execute/defer, and end to end through dag.test() and the receiver."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_iterable.event_queue import EventQueue
from airflow_provider_iterable.sensors import (
    IterableSystemWebhookSensor,
    IterableWebhookSensor,
    IterableWorkflowWebhookSensor,
)
from airflow_provider_iterable.triggers import IterableWebhookTrigger
from tests.sensors.conftest import Receiver
from tests.triggers.helpers import new_event


def context_at(start: datetime) -> Any:
    """The part of a task context the sensor reads: the DAG run's start."""
    return {"dag_run": SimpleNamespace(start_date=start, logical_date=None)}


@pytest.fixture
def queue(queue_url: str) -> Any:
    with EventQueue(queue_url) as q:
        q.head_id()
        yield q


# -- unit: execute, defer, execute_complete ------------------------------------------------------


def test_defers_by_default_with_the_run_start_window_and_the_timeout(
    queue: EventQueue, queue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    sensor = IterableSystemWebhookSensor(
        task_id="wait", event_name="smsSend", match={"email": "a@x"}, timeout=120, queue_url=queue_url
    )
    assert sensor.deferrable is True
    start = datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc)
    queue.append(new_event(event_name="smsSend", email="b@x"))  # does not match
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context_at(start))
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=120)
    trigger = deferred.value.trigger
    assert isinstance(trigger, IterableWebhookTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["kind"] == "system" and kwargs["event_name"] == "smsSend"
    assert kwargs["match"] == {"email": "a@x"}
    assert kwargs["since"] == start.isoformat()
    assert kwargs["mode"] == "sensor"
    assert IterableWebhookTrigger(**kwargs).serialize()[1] == kwargs


def test_the_deferred_trigger_carries_the_timeout_as_a_deadline(queue: EventQueue, queue_url: str) -> None:
    sensor = IterableWebhookSensor(task_id="wait", event_name="emailOpen", timeout=120, queue_url=queue_url)
    before = datetime.now(timezone.utc)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context_at(before))
    deadline = datetime.fromisoformat(deferred.value.trigger.serialize()[1]["deadline"])
    assert before + timedelta(seconds=120) <= deadline <= datetime.now(timezone.utc) + timedelta(seconds=120)


def test_a_timeout_event_fails_the_sensor_and_soft_fail_skips_it() -> None:
    timed_out = {"event": {"status": "timeout", "deadline": "2026-11-27T03:00:00+00:00"}}
    sensor = IterableWebhookSensor(task_id="wait", timeout=60)
    with pytest.raises(AirflowSensorTimeout, match="timeout of 60"):
        sensor.resume_execution("execute_complete", timed_out, {})
    soft = IterableWebhookSensor(task_id="soft", timeout=60, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        soft.resume_execution("execute_complete", timed_out, {})


def test_an_event_already_there_completes_without_deferring(queue: EventQueue, queue_url: str) -> None:
    start = datetime.now(timezone.utc) - timedelta(seconds=5)
    stored, _ = queue.append(new_event(kind="journey", event_name=None, workflow_id=3001, email="a@x"))
    sensor = IterableWorkflowWebhookSensor(task_id="wait", workflow_id="3001", queue_url=queue_url)
    result = sensor.execute(context_at(start))
    assert result["id"] == stored and result["kind"] == "journey" and result["workflow_id"] == 3001


def test_an_event_before_the_window_does_not_count(queue: EventQueue, queue_url: str) -> None:
    queue.append(new_event(event_name="emailOpen"))
    start = datetime.now(timezone.utc) + timedelta(seconds=1)
    sensor = IterableWebhookSensor(task_id="wait", event_name="emailOpen", queue_url=queue_url)
    with pytest.raises(TaskDeferred):
        sensor.execute(context_at(start))


def test_since_overrides_the_run_start(queue: EventQueue, queue_url: str) -> None:
    stored, _ = queue.append(new_event(event_name="emailOpen"))
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    sensor = IterableWebhookSensor(
        task_id="wait", event_name="emailOpen", since="2000-01-01T00:00:00Z", queue_url=queue_url
    )
    assert sensor.execute(context_at(later))["id"] == stored


def test_poke_on_an_unreadable_queue_is_not_yet_then_finds_the_event(tmp_path: Path) -> None:
    missing_dir = tmp_path / "not-yet"
    queue_url = f"sqlite:///{missing_dir / 'queue.db'}"
    sensor = IterableWebhookSensor(
        task_id="wait", event_name="emailOpen", queue_url=queue_url, deferrable=False
    )
    context = context_at(datetime.now(timezone.utc) - timedelta(seconds=5))
    assert sensor.poke(context).is_done is False  # the queue cannot be opened: not a failure
    missing_dir.mkdir()
    with EventQueue(queue_url) as queue:
        stored, _ = queue.append(new_event(event_name="emailOpen"))
    answer = sensor.poke(context)
    assert answer.is_done is True and answer.xcom_value["id"] == stored


def test_execute_complete_returns_the_event_limited_to_xcom_fields() -> None:
    sensor = IterableWebhookSensor(task_id="wait", xcom_fields=["id", "payload.email", "payload.nope"])
    event = {"id": 7, "kind": "system", "payload": {"email": "a@x", "dataFields": {"x": 1}}}
    assert sensor.execute_complete({}, {"status": "success", "event": event}) == {
        "id": 7,
        "payload": {"email": "a@x"},
    }


def test_execute_complete_fails_on_an_error_event() -> None:
    sensor = IterableWebhookSensor(task_id="wait")
    with pytest.raises(AirflowException, match="queue exploded"):
        sensor.execute_complete({}, {"status": "error", "message": "queue exploded"})
    with pytest.raises(AirflowException, match="no event"):
        sensor.execute_complete({}, None)


def test_expected_fields_and_payload_schema_fail_fast_naming_the_problem() -> None:
    event = {"id": 9, "payload": {"email": "a@x", "dataFields": {"campaignId": "x"}}}
    sensor = IterableWebhookSensor(task_id="wait", expected_fields=["email", "dataFields.templateId"])
    with pytest.raises(
        AirflowFailException, match=r"event 9 lacks the expected field 'dataFields.templateId'"
    ):
        sensor.execute_complete({}, {"status": "success", "event": event})
    schema = {
        "type": "object",
        "required": ["dataFields"],
        "properties": {"dataFields": {"properties": {"campaignId": {"type": "integer"}}}},
    }
    sensor = IterableWebhookSensor(task_id="wait", payload_schema=schema)
    with pytest.raises(AirflowFailException, match=r"payload_schema at dataFields/campaignId: 'x' is not"):
        sensor.execute_complete({}, {"status": "success", "event": event})
    ok = {"id": 10, "payload": {"dataFields": {"campaignId": 5}}}
    assert sensor.execute_complete({}, {"status": "success", "event": ok})["id"] == 10


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"match": "email=a"}, "match"),
        ({"expected_fields": "email"}, "expected_fields"),
        ({"xcom_fields": [""]}, "xcom_fields"),
        ({"payload_schema": {"type": 12}}, "payload_schema"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        IterableWebhookSensor(task_id="wait", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [({"workflow_id": "abc"}, "workflow_id"), ({"kind": "sms"}, "kind"), ({"since": "soon"}, "since")],
)
def test_bad_rendered_values_fail_the_task_naming_the_parameter(
    queue_url: str, kwargs: dict[str, Any], parameter: str
) -> None:
    sensor = IterableWebhookSensor(task_id="wait", queue_url=queue_url, **kwargs)
    with pytest.raises(AirflowFailException, match=parameter):
        sensor.execute(context_at(datetime.now(timezone.utc)))


def test_specialised_sensors_fix_their_kind() -> None:
    assert IterableSystemWebhookSensor(task_id="s", event_name="emailOpen").kind == "system"
    assert IterableWorkflowWebhookSensor(task_id="w", workflow_id=1).kind == "journey"
    with pytest.raises(ValueError, match="kind"):
        IterableSystemWebhookSensor(task_id="s", event_name="emailOpen", kind="journey")
    assert "match" in IterableWebhookSensor.template_fields


# -- end to end: dag.test(), the real receiver ---------------------------------------------------

DEFERRED_DAG = """
import json, os
from datetime import datetime
from pathlib import Path
from airflow.sdk import DAG, task
from airflow_provider_iterable.sensors import (
    IterableSystemWebhookSensor, IterableWebhookSensor, IterableWorkflowWebhookSensor,
)

with DAG("sensor_deferred", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    first = IterableSystemWebhookSensor(
        task_id="first", event_name="smsSend", match={"email": "{{ params.email }}"},
        params={"email": "ada@example.com"},
    )
    second = IterableWebhookSensor(
        task_id="second", kind="system", event_name="smsSend", match={"email": "ada@example.com"},
        xcom_fields=["id", "payload.email"],
    )
    journey = IterableWorkflowWebhookSensor(
        task_id="journey", workflow_id=3001, match={"score": 7}, expected_fields=["score", "email"],
    )

    @task
    def report(**context):
        ti = context["ti"]
        out = {t: ti.xcom_pull(task_ids=t) for t in ("first", "second", "journey")}
        Path(os.environ["RESULT_FILE"]).write_text(json.dumps(out))

    first >> second >> journey >> report()
"""


@pytest.mark.slow
def test_deferred_sensors_wake_on_webhooks_posted_to_the_receiver(
    receiver: Receiver, run_dag: Any, tmp_path: Path
) -> None:
    process = run_dag(DEFERRED_DAG, "sensor_deferred")
    process.wait_for_output("Waiting for an Iterable webhook", count=1)
    time.sleep(1.0)  # the trigger is running inline now
    receiver.post_system({"email": "someone-else@example.com", "eventName": "smsSend", "dataFields": {}})
    sms = {"email": "ada@example.com", "eventName": "smsSend", "dataFields": {"campaignId": 2001}}
    receiver.post_system(sms)
    process.wait_for_output("Waiting for an Iterable webhook", count=2)
    time.sleep(1.0)
    receiver.post_journey_form(3001, {"email": "ada@example.com", "score": "6"})
    receiver.post_journey_form(3001, {"email": "ada@example.com", "score": "7"})
    result = process.result()
    assert result["state"] == "success", process.output()[-4000:]
    xcoms = json.loads((tmp_path / "sensor_deferred.json").read_text())
    first, second, journey = xcoms["first"], xcoms["second"], xcoms["journey"]
    assert first["payload"] == sms and first["kind"] == "system" and first["event_name"] == "smsSend"
    # The second sensor saw the same event (sensors observe, they don't consume), without deferring.
    assert second == {"id": first["id"], "payload": {"email": "ada@example.com"}}
    assert process.output().count("Waiting for an Iterable webhook") == 2
    assert journey["kind"] == "journey" and journey["workflow_id"] == 3001
    assert journey["payload"] == {"email": "ada@example.com", "score": "7"}


UPSTREAM_DAG = """
import os
from datetime import datetime
import httpx
from airflow.sdk import DAG, task
from airflow_provider_iterable.sensors import IterableSystemWebhookSensor

with DAG("sensor_upstream", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    @task
    def send():
        # Stands in for an upstream send whose webhook arrives before the sensor starts.
        answer = httpx.post(
            os.environ["RECEIVER_URL"] + "/webhooks/iterable_default/system",
            json={"email": "bob@example.com", "eventName": "emailSend", "dataFields": {"campaignId": 1001}},
            headers={"Authorization": os.environ["WEBHOOK_SECRET"]},
        )
        answer.raise_for_status()

    ok = IterableSystemWebhookSensor(
        task_id="ok", event_name="emailSend", match={"dataFields.campaignId": 1001},
        expected_fields=["dataFields.campaignId"],
    )
    bad = IterableSystemWebhookSensor(
        task_id="bad", event_name="emailSend", expected_fields=["dataFields.templateId"],
    )
    s = send()
    s >> ok
    s >> bad
"""


@pytest.mark.slow
def test_event_before_the_sensor_starts_and_expected_fields_failure(receiver: Receiver, run_dag: Any) -> None:
    from tests.sensors.conftest import WEBHOOK_SECRET

    process = run_dag(
        UPSTREAM_DAG, "sensor_upstream", RECEIVER_URL=receiver.url, WEBHOOK_SECRET=WEBHOOK_SECRET
    )
    result = process.result()
    assert result["tasks"] == {"send": "success", "ok": "success", "bad": "failed"}, process.output()[-4000:]
    assert "lacks the expected field 'dataFields.templateId'" in process.output()
    assert "Waiting for an Iterable webhook" not in process.output()


POKE_DAG = """
from datetime import datetime
from airflow.sdk import DAG
from airflow_provider_iterable.sensors import IterableSystemWebhookSensor

with DAG("sensor_poke", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    poke = IterableSystemWebhookSensor(
        task_id="poke", event_name="emailOpen", match={"email": "poke@example.com"},
        deferrable=False, mode="poke", poke_interval=0.5, timeout=60,
    )
    reschedule = IterableSystemWebhookSensor(
        task_id="reschedule", event_name="emailOpen", match={"email": "resched@example.com"},
        deferrable=False, mode="reschedule", poke_interval=1, timeout=60,
    )
    timeout = IterableSystemWebhookSensor(
        task_id="timeout", event_name="emailOpen", match={"email": "nobody@example.com"},
        deferrable=False, mode="poke", poke_interval=0.5, timeout=2,
    )
    poke >> reschedule >> timeout
"""


@pytest.mark.slow
def test_poke_reschedule_and_timeout(receiver: Receiver, run_dag: Any) -> None:
    process = run_dag(POKE_DAG, "sensor_poke")
    process.wait_for_output("Checking the event queue", count=2)
    receiver.post_system({"email": "poke@example.com", "eventName": "emailOpen", "dataFields": {}})
    checks = process.output().count("Checking the event queue")
    process.wait_for_output("Checking the event queue", count=checks + 2)  # reschedule's second check
    receiver.post_system({"email": "resched@example.com", "eventName": "emailOpen", "dataFields": {}})
    result = process.result()
    assert result["tasks"] == {"poke": "success", "reschedule": "success", "timeout": "failed"}, (
        process.output()[-4000:]
    )
    assert "Sensor has timed out" in process.output()


def test_log_lines_name_the_filters_without_their_values(
    queue: EventQueue, queue_url: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Match values are often e-mail addresses: the waiting message names the paths only."""
    sensor = IterableSystemWebhookSensor(
        task_id="wait", event_name="smsSend", match={"email": "private@example.com"}, queue_url=queue_url
    )
    with caplog.at_level("INFO"), pytest.raises(TaskDeferred):
        sensor.execute(context_at(datetime.now(timezone.utc)))
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    waiting = [line for line in logged.splitlines() if "Waiting for an Iterable webhook" in line]
    assert waiting and "matching email" in waiting[0] and "smsSend" in waiting[0]
    assert "private@example.com" not in logged
