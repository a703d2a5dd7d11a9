"""The trigger on a real Airflow: asset watchers (R15) and deferred sensors in Airflow's triggerer.

API server (with the receiver plugin), scheduler, DAG processor and triggerer run as separate
processes on loopback. Webhooks are posted to the API server; the tests read what Airflow recorded
in its metadata database: asset events (DAG runs fold events, so their count proves nothing),
task instance states and XComs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_iterable.event_queue import EventQueue
from airflow_provider_iterable.triggers import IterableWebhookTrigger
from airflow_provider_iterable.triggers.watcher_cursor import CURSOR_KEY_PREFIX
from tests.conftest import REPO_ROOT

SECRET = "r15-secret"
WORKFLOW_ID = 3001

DAG_SOURCE = f"""
from datetime import datetime
from airflow.sdk import DAG, task
from airflow_provider_iterable.assets import iterable_webhook_asset, webhook_events

reached = iterable_webhook_asset("r15_journey", workflow_id={WORKFLOW_ID}, kind="journey")

with DAG("r15_consumer", schedule=[reached], start_date=datetime(2026, 1, 1), catchup=False):
    @task
    def handle(*, triggering_asset_events=None):
        return [e["id"] for e in webhook_events(triggering_asset_events[reached])]

    handle()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Airflow:
    """Airflow's components as processes, each in its own process group (killed by group id)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.queue_url = f"sqlite:///{home / 'iterable_webhooks.db'}"
        self.db = home / "airflow.db"
        self.dags = dags = home / "dags"
        dags.mkdir(parents=True)
        venv_bin = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO_ROOT),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # A paused DAG's assets get no watcher: the DAG must be active from the start.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db}",
            "AIRFLOW__API__BASE_URL": self.api,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__ITERABLE__QUEUE_URL": self.queue_url,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW_CONN_ITERABLE_DEFAULT": json.dumps(
                {"conn_type": "iterable", "password": "k", "extra": {"webhook_secrets": [SECRET]}}
            ),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def add_dag(self, file_name: str, source: str) -> None:
        """Write a DAG file; the DAG processor picks it up within its refresh interval."""
        (self.dags / file_name).write_text(source)

    def ensure_triggerer(self) -> None:
        if "triggerer" not in self.procs:
            self.start("triggerer", "triggerer")

    def query(self, sql: str, *params: Any) -> list[Any]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30) as conn:
            return conn.execute(sql, params).fetchall()

    def task_states(self, dag_id: str) -> dict[str, str | None]:
        rows = self.query("SELECT task_id, state FROM task_instance WHERE dag_id = ?", dag_id)
        return {task_id: state for task_id, state in rows}

    def run(self, *args: str, timeout: float = 300) -> None:
        subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self, name: str, *args: str) -> None:
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)

    def log_tail(self) -> str:
        out = []
        for name in ("triggerer", "scheduler", "dag-processor", "api-server"):
            path = self.home / f"{name}.log"
            if path.exists():
                out.append(f"--- {name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(out)

    def post_journey(self, body: dict[str, Any]) -> int:
        answer = httpx.post(
            f"{self.api}/iterable/webhooks/iterable_default/journeys/{WORKFLOW_ID}",
            json=body,
            headers={"Authorization": SECRET},
            timeout=20,
        )
        assert answer.status_code == 200, answer.text
        return int(EventQueue(self.queue_url).head_id())

    def stored_cursor(self, consumer: str) -> Any:
        """The watcher's cursor as kept in Airflow's asset state store."""
        rows = self.query(
            "SELECT s.value FROM asset_state_store s JOIN asset a ON a.id = s.asset_id "
            "WHERE a.name = 'r15_journey' AND s.key = ?",
            f"{CURSOR_KEY_PREFIX}:{consumer}",
        )
        return json.loads(rows[0][0]) if rows else None

    def asset_event_ids(self) -> list[int]:
        """Queue ids carried by the asset events Airflow recorded for the watched asset."""
        rows = self.query(
            "SELECT ae.extra FROM asset_event ae JOIN asset a ON a.id = ae.asset_id "
            "WHERE a.name = 'r15_journey' ORDER BY ae.id"
        )
        ids = []
        for (extra,) in rows:
            data = json.loads(extra) if isinstance(extra, str) else extra
            ids.append(int(data["payload"]["event"]["id"]))
        return ids


def wait_for(predicate: Any, timeout: float, what: str, airflow: Airflow) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (sqlite3.OperationalError, httpx.HTTPError):
            pass  # the database is being migrated / the server is starting
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{airflow.log_tail()}")


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    """API server (with the receiver), DAG processor and scheduler; each test starts the triggerer."""
    instance = Airflow(tmp_path_factory.mktemp("airflow"))
    try:
        instance.run("db", "migrate")
        instance.start("api-server", "api-server", "--port", str(instance.port))
        instance.start("dag-processor", "dag-processor")
        instance.start("scheduler", "scheduler")
        wait_for(
            lambda: httpx.get(f"{instance.api}/iterable/health", timeout=5).status_code == 200,
            120,
            "the API server",
            instance,
        )
        yield instance
    finally:
        instance.stop_all()


@pytest.mark.slow
@pytest.mark.timeout(330)
def test_r15_every_webhook_becomes_an_asset_event_across_triggerer_restarts(airflow: Airflow) -> None:
    started = time.monotonic()
    # History: stored before the watcher ever ran; it must never become an asset event.
    history = airflow.post_journey({"email": "old@example.com", "step": "history"})

    airflow.ensure_triggerer()
    airflow.add_dag("r15_consumer.py", DAG_SOURCE)  # the watcher starts once this is parsed
    consumer = IterableWebhookTrigger(workflow_id=WORKFLOW_ID, kind="journey").consumer_name
    queue = EventQueue(airflow.queue_url)
    wait_for(lambda: queue.get_cursor(consumer) is not None, 120, "the watcher to start", airflow)

    first = airflow.post_journey({"email": "a@example.com", "step": "1"})
    wait_for(lambda: first in airflow.asset_event_ids(), 60, "the first asset event", airflow)

    # The triggerer dies (SIGKILL, no clean shutdown); webhooks keep arriving meanwhile.
    airflow.kill("triggerer")
    while_down = [airflow.post_journey({"email": f"b{i}@example.com", "step": "down"}) for i in range(3)]
    # Another journey's webhook and a system event must not reach this asset.
    httpx.post(
        f"{airflow.api}/iterable/webhooks/iterable_default/journeys/3002",
        json={"email": "x@example.com"},
        headers={"Authorization": SECRET},
        timeout=20,
    ).raise_for_status()
    airflow.start("triggerer", "triggerer")
    wait_for(
        lambda: set(while_down) <= set(airflow.asset_event_ids()), 90, "events posted while down", airflow
    )

    after = airflow.post_journey({"email": "c@example.com", "step": "after"})
    wait_for(lambda: after in airflow.asset_event_ids(), 60, "the event after the restart", airflow)

    seen = airflow.asset_event_ids()
    time.sleep(8)  # idle: a watcher that re-fires would add asset events now
    assert airflow.asset_event_ids() == seen

    expected = {first, *while_down, after}
    assert set(seen) == expected, (seen, expected)
    assert history not in seen
    # At-least-once: a duplicate may only repeat an id (the event in flight at the kill).
    assert len(seen) - len(set(seen)) <= 1, seen
    # The cursor lives in Airflow's asset state store, mirrored to the queue (retention keeps
    # what the watcher still needs). Both move only once Airflow confirmed the events stored.
    wait_for(lambda: airflow.stored_cursor(consumer) == after, 30, "the stored cursor", airflow)
    assert queue.get_cursor(consumer) == after
    assert time.monotonic() - started < 180


SENSOR_DAG = """
from datetime import datetime
from airflow.sdk import DAG
from airflow_provider_iterable.sensors import IterableSystemWebhookSensor

with DAG("real_triggerer_sensors", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    for name in ("first", "second"):
        IterableSystemWebhookSensor(task_id=name, event_name="smsSend", match={"email": "t@example.com"})
    IterableSystemWebhookSensor(
        task_id="times_out", event_name="smsSend", match={"email": "nobody@example.com"}, timeout=10
    )
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_deferred_sensors_on_a_real_triggerer_share_a_poll_and_time_out(airflow: Airflow) -> None:
    """Sensors deferred to the real triggerer (shared-stream path) wake on one webhook; timeouts hold."""
    dag_id = "real_triggerer_sensors"
    airflow.ensure_triggerer()
    airflow.add_dag("real_triggerer_sensors.py", SENSOR_DAG)
    wait_for(
        lambda: airflow.query("SELECT 1 FROM dag WHERE dag_id = ?", dag_id), 90, "the DAG parsed", airflow
    )
    airflow.run("dags", "trigger", dag_id)
    wait_for(
        lambda: (
            set(airflow.task_states(dag_id).values()) == {"deferred"}
            and len(airflow.task_states(dag_id)) == 3
        ),
        120,
        "all three sensors deferred",
        airflow,
    )
    deferred_at = time.monotonic()
    # Let the executor report the deferring workloads as finished first: Airflow 3.3.2 fails a
    # task resumed before that report arrives ("finished with state success, but the task
    # instance's state attribute is queued"), whatever the trigger.
    time.sleep(5)
    answer = httpx.post(
        f"{airflow.api}/iterable/webhooks/iterable_default/system",
        json={"email": "t@example.com", "eventName": "smsSend", "dataFields": {"campaignId": 2001}},
        headers={"Authorization": SECRET},
        timeout=20,
    )
    assert answer.status_code == 200
    wait_for(
        lambda: (
            airflow.task_states(dag_id)["first"] == "success"
            and airflow.task_states(dag_id)["second"] == "success"
        ),
        90,
        "both sensors to complete",
        airflow,
    )
    wait_for(lambda: airflow.task_states(dag_id)["times_out"] == "failed", 90, "the timeout", airflow)
    assert time.monotonic() - deferred_at >= 5  # failed by its timeout, not at once
    rows = airflow.query(
        "SELECT task_id, value FROM xcom WHERE dag_id = ? AND key = 'return_value' ORDER BY task_id", dag_id
    )
    values = {task_id: json.loads(value) for task_id, value in rows}
    assert values["first"]["id"] == values["second"]["id"]
    assert values["first"]["payload"]["email"] == "t@example.com"
