"""``uvicorn --factory airflow_provider_iterable.webhooks:create_app`` serves from the config alone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from airflow_provider_iterable.event_queue import EventQueue
from tests.webhooks.conftest import CONN_ENV, CONN_ID, auth_headers, default_connection, system_body


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_create_app_with_no_arguments_reads_the_iterable_section(tmp_path: Path) -> None:
    queue_url = f"sqlite:///{tmp_path / 'from-config.db'}"
    port = _free_port()
    env = {
        **os.environ,
        CONN_ENV: default_connection(),
        "AIRFLOW__ITERABLE__QUEUE_URL": queue_url,
        "AIRFLOW__ITERABLE__WEBHOOK_MAX_BODY_BYTES": "2048",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "airflow_provider_iterable.webhooks:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(url + "/health", timeout=5).status_code == 200
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "uvicorn --factory did not start"
                time.sleep(0.2)

        stored = httpx.post(
            f"{url}/webhooks/{CONN_ID}/system", json=system_body(1), headers=auth_headers(), timeout=30
        )
        assert stored.status_code == 200, stored.text
        # The body limit came from AIRFLOW__ITERABLE__WEBHOOK_MAX_BODY_BYTES, not the 1 MiB default.
        too_big = httpx.post(
            f"{url}/webhooks/{CONN_ID}/system",
            json=system_body(2, padding="x" * 4096),
            headers=auth_headers(),
            timeout=30,
        )
        assert too_big.status_code == 413
    finally:
        proc.terminate()
        proc.wait(30)

    queue = EventQueue(queue_url)
    try:
        events = queue.fetch()
    finally:
        queue.close()
    assert [(e.id, e.conn_id, e.event_name, e.email) for e in events] == [
        (stored.json()["id"], CONN_ID, "emailSend", "user1@example.com")
    ]
