"""Start-up, background work and shutdown of the receiver; the plugin that mounts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from airflow_provider_iterable.webhooks import create_app
from tests.webhooks.conftest import (
    ReceiverProcess,
    ThreadedServer,
    count_rows,
    post,
    process_running,
    system_body,
    writer_processes,
)


def test_importing_the_plugin_does_no_io(tmp_path: Path) -> None:
    queue_file = tmp_path / "never-created.db"
    code = (
        "import sys\n"
        "from airflow_provider_iterable.plugins import IterableWebhooksPlugin as P\n"
        "assert 'fastapi' not in sys.modules, 'importing the plugin imported FastAPI'\n"
        "(app,) = [a['app'] for a in P.fastapi_apps]\n"
        "assert P.fastapi_apps[0]['url_prefix'] == '/iterable'\n"
        "assert app.state.receiver.writer is None\n"
        "assert app.openapi_url is None and app.docs_url is None and app.redoc_url is None\n"
        "print('ok')\n"
    )
    env = {**os.environ, "AIRFLOW__ITERABLE__QUEUE_URL": f"sqlite:///{queue_file}"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
    assert not queue_file.exists()


def test_plugin_is_registered_by_entry_point() -> None:
    from importlib.metadata import entry_points

    (entry,) = [
        e for e in entry_points(group="airflow.plugins") if e.value.startswith("airflow_provider_iterable")
    ]
    assert entry.load().__name__ == "IterableWebhooksPlugin"


def test_background_purge_removes_events_past_retention(conn_env: str, sqlite_url: str) -> None:
    app = create_app(queue_url=sqlite_url, retention_days=0, purge_interval_seconds=0.3)
    with ThreadedServer(app) as server:
        for n in range(3):
            assert post(server.url, system_body(n)).status_code == 200
        deadline = time.monotonic() + 20
        while count_rows(sqlite_url) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert count_rows(sqlite_url) == 0
        assert app.state.receiver.purger.runs >= 1


def test_no_purge_when_disabled(conn_env: str, sqlite_url: str) -> None:
    app = create_app(queue_url=sqlite_url, retention_days=0, purge_interval_seconds=0)
    with TestClient(app) as client:
        assert (
            client.post(
                "/webhooks/iterable_webhooks_test/system",
                json=system_body(1),
                headers={"Authorization": "Bearer s3cret-current-7f2a"},
            ).status_code
            == 200
        )
        assert app.state.receiver.purger is None
    assert count_rows(sqlite_url) == 1


def test_invalid_configuration_fails_at_start_not_at_import(
    conn_env: str, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    monkeypatch.setenv("AIRFLOW__ITERABLE__WEBHOOK_MAX_BODY_BYTES", "lots")
    app = create_app(queue_url=sqlite_url)  # building the app reads nothing
    with pytest.raises(ValueError, match="webhook_max_body_bytes"), TestClient(app):
        pass


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_graceful_stop_keeps_every_acknowledged_event(conn_env: str, sqlite_url: str, writer: str) -> None:
    app = create_app(queue_url=sqlite_url, writer=writer)
    with ThreadedServer(app) as server:
        ids = [post(server.url, system_body(n)).json()["id"] for n in range(20)]
    assert len(set(ids)) == 20
    assert count_rows(sqlite_url) == 20


def test_writer_process_death_is_a_503_then_a_new_writer_takes_over(conn_env: str, sqlite_url: str) -> None:
    app = create_app(queue_url=sqlite_url, writer="process")
    with ThreadedServer(app) as server:
        assert post(server.url, system_body(0)).status_code == 200
        writer = app.state.receiver.writer
        (channel,) = writer._channels.values()
        channel.proc.kill()
        channel.proc.wait(10)
        # Deliveries get 503 (never a 2xx unstored) until a new writer is started, at most a
        # second later.
        answers = []
        deadline = time.monotonic() + 10
        while not answers or answers[-1] != 200:
            answers.append(post(server.url, system_body(1)).status_code)
            assert time.monotonic() < deadline, answers
            time.sleep(0.1)
        assert set(answers) <= {200, 503}
        (new_channel,) = writer._channels.values()
        assert new_channel.proc.pid != channel.proc.pid
    assert count_rows(sqlite_url) == 2


def test_writer_process_exits_when_the_receiver_is_sigkilled(conn_env: str, sqlite_url: str) -> None:
    receiver = ReceiverProcess(sqlite_url).start()
    try:
        assert post(receiver.url, system_body(0)).status_code == 200
        (writer,) = writer_processes(receiver.pid)
        assert process_running(writer)
        # The queue URL (it may hold a password) is not on the writer's command line.
        assert sqlite_url.encode() not in Path(f"/proc/{writer}/cmdline").read_bytes()
        receiver.kill()
        # No signal reaches the writer: it sees the end of its socket and exits by itself.
        deadline = time.monotonic() + 30
        while process_running(writer) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_running(writer), "the writer process outlived its receiver"
    finally:
        receiver.kill()
    assert count_rows(sqlite_url) == 1


#: Starts a writer process the way the receiver does, hands a copy of the receiver's end of the
#: socket to a long-lived process (as a process forked from the receiver would hold it), exits.
ORPHAN_WRITER = """
import os, socket, subprocess, sys
from airflow_provider_iterable.webhooks.writer_process import _CHILD_CODE, QUEUE_URL_ENV
receiver_end, writer_end = socket.socketpair()
quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
writer = subprocess.Popen(
    [sys.executable, "-c", _CHILD_CODE, "--fd", str(writer_end.fileno()), "--parent-pid",
     str(os.getpid()), "--busy-timeout", "5", "--dedupe-window", "60", "--max-batch", "8",
     "--quick-failure", "1"],
    pass_fds=[writer_end.fileno()], env={**os.environ, QUEUE_URL_ENV: sys.argv[1]}, **quiet,
)
holder = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)"], pass_fds=[receiver_end.fileno()], **quiet
)
print(writer.pid, holder.pid, flush=True)
"""


def test_writer_process_exits_when_its_receiver_dies_though_its_socket_stays_open(sqlite_url: str) -> None:
    started = subprocess.run(
        [sys.executable, "-c", ORPHAN_WRITER, sqlite_url], capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 0, started.stderr
    writer, holder = (int(pid) for pid in started.stdout.split())
    try:
        deadline = time.monotonic() + 30
        while process_running(writer) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not process_running(writer), "the writer process outlived its receiver"
        assert process_running(holder)  # the socket was still open: no end of file ended the writer
    finally:
        os.kill(holder, signal.SIGKILL)
        if process_running(writer):
            os.kill(writer, signal.SIGKILL)
