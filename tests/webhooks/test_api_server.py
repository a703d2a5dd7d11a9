"""The receiver mounted on a real ``airflow api-server`` by the plugin.

The connection is created in Airflow's metadata database (``airflow connections add``), so this
also shows the mounted receiver finds connections the way every Airflow server component does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from airflow_provider_iterable.event_queue import EventQueue
from tests.webhooks.conftest import SECRET, auth_headers, process_running, system_body, writer_processes

CONN_ID = "iterable_metadata_db"


def free_port() -> int:
    # The API server cannot bind port 0 and report it; take a free port and release it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.airflow_server
@pytest.mark.timeout(420)
def test_plugin_mounts_the_receiver_on_the_api_server(airflow_db: Path, tmp_path: Path) -> None:
    queue_url = f"sqlite:///{tmp_path / 'queue.db'}"
    port = free_port()
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_db),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__ITERABLE__QUEUE_URL": queue_url,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "delete", CONN_ID],
        env=env,
        capture_output=True,
        timeout=180,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow",
            "connections",
            "add",
            CONN_ID,
            "--conn-type",
            "iterable",
            "--conn-password",
            "api-key-unused",
            "--conn-extra",
            json.dumps({"webhook_secrets": [SECRET]}),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )
    log = (tmp_path / "api-server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow",
            "api-server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/iterable"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, (tmp_path / "api-server.log").read_text()[-3000:]
            try:
                if httpx.get(base + "/health", timeout=10).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "API server did not serve /iterable/health in time"
            time.sleep(1)

        # The writer process starts with the first delivery, not with the server.
        assert writer_processes(server.pid) == []
        answer = httpx.post(
            f"{base}/webhooks/{CONN_ID}/system", json=system_body(1), headers=auth_headers(), timeout=60
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "stored"
        (writer,) = writer_processes(server.pid)
        wrong = httpx.post(
            f"{base}/webhooks/{CONN_ID}/system", json=system_body(2), headers=auth_headers("nope"), timeout=60
        )
        assert wrong.status_code == 401
        unknown = httpx.post(f"{base}/webhooks/not_a_conn/system", json=system_body(3), timeout=60)
        assert unknown.status_code == 404
        assert httpx.get(f"{base}/docs", timeout=60).status_code == 404

        # Stopping the server (its main process only) ends the writer too: Airflow does not run
        # a mounted app's lifespan, so the writer must notice its server's end by itself.
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        deadline = time.monotonic() + 30
        while process_running(writer) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not process_running(writer), "the writer process outlived the API server"
    finally:
        # Whatever is left of the server's process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        log.close()

    queue = EventQueue(queue_url)
    try:
        (event,) = queue.fetch()
    finally:
        queue.close()
    assert (event.conn_id, event.kind, event.event_name, event.email) == (
        CONN_ID,
        "system",
        "emailSend",
        "user1@example.com",
    )
    assert event.id == answer.json()["id"]
