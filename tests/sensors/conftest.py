"""Fixtures for the sensor tests: the real webhook receiver on loopback, dag.test() in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.webhooks.conftest import ThreadedServer

WEBHOOK_SECRET = "sensor-test-secret"
CONNECTION = {
    "conn_type": "iterable",
    "password": "test-api-key",
    "extra": {"webhook_secrets": [WEBHOOK_SECRET]},
}


@dataclass
class Receiver:
    url: str
    queue_url: str

    def post_system(self, body: dict[str, Any], conn_id: str = "iterable_default") -> httpx.Response:
        answer = httpx.post(
            f"{self.url}/webhooks/{conn_id}/system",
            json=body,
            headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return answer

    def post_journey_form(self, workflow_id: int, form: dict[str, str]) -> httpx.Response:
        answer = httpx.post(
            f"{self.url}/webhooks/iterable_default/journeys/{workflow_id}",
            data=form,
            headers={"Authorization": WEBHOOK_SECRET},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return answer


@pytest.fixture
def queue_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


@pytest.fixture
def receiver(queue_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """Serve the real receiver app (uvicorn, port 0) against the test's queue."""
    from airflow_provider_iterable.webhooks import create_app

    monkeypatch.setenv("AIRFLOW_CONN_ITERABLE_DEFAULT", json.dumps(CONNECTION))
    with ThreadedServer(create_app(queue_url=queue_url, purge_interval_seconds=0)) as server:
        yield Receiver(url=server.url, queue_url=queue_url)


RUNNER = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
if bag.import_errors:
    print("IMPORT-ERRORS", bag.import_errors, flush=True)
    sys.exit(3)
dag = bag.get_dag(sys.argv[2])
run = dag.test()
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("DAG-RESULT " + json.dumps({"state": str(run.state), "tasks": states}), flush=True)
"""


class DagTestProcess:
    """``dag.test()`` of one DAG file in a subprocess (it ignores defer timeouts and SIGTERM when hung)."""

    def __init__(self, dag_file: Path, dag_id: str, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(dag_file), dag_id],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_output(self, text: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.output().count(text) < count:
            if self.proc.poll() is not None and self.output().count(text) < count:
                time.sleep(0.2)
                raise AssertionError(f"dag.test() ended before printing {text!r}:\n{self.output()[-6000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output()[-6000:]}")
            time.sleep(0.05)

    def result(self, timeout: float = 90) -> dict[str, Any]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"dag.test() hung:\n{self.output()[-6000:]}") from None
        self._reader.join(timeout=5)
        for line in self.lines:
            if line.startswith("DAG-RESULT "):
                return dict(json.loads(line[len("DAG-RESULT ") :]))
        raise AssertionError(f"dag.test() printed no result:\n{self.output()[-6000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def run_dag(airflow_db: Path, queue_url: str, tmp_path: Path) -> Iterator[Any]:
    """Start ``dag.test()`` of a DAG source in a subprocess; kill whatever is left at the end."""
    started: list[DagTestProcess] = []

    def start(source: str, dag_id: str, **extra_env: str) -> DagTestProcess:
        folder = tmp_path / f"dags_{len(started)}"
        folder.mkdir()
        dag_file = folder / f"{dag_id}.py"
        dag_file.write_text(source)
        env = os.environ.copy()
        env.update(
            {
                "AIRFLOW__ITERABLE__QUEUE_URL": queue_url,
                # dag.test() serialises the DAG through the dags-folder bundle: point it here.
                "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
                "AIRFLOW_CONN_ITERABLE_DEFAULT": json.dumps(CONNECTION),
                "PYTHONPATH": str(REPO_ROOT),
                "RESULT_FILE": str(tmp_path / f"{dag_id}.json"),
                **extra_env,
            }
        )
        process = DagTestProcess(dag_file, dag_id, env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
