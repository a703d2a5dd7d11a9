"""Fixtures for the webhook receiver: a real receiver process on loopback, connections, queues."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

SECRET = "s3cret-current-7f2a"
OLD_SECRET = "s3cret-previous-91bc"
CONN_ID = "iterable_webhooks_test"
CONN_ENV = f"AIRFLOW_CONN_{CONN_ID.upper()}"

_LISTENING = re.compile(r"listening on (http://\S+)")


def connection_json(**extra: Any) -> str:
    """Return an ``AIRFLOW_CONN_*`` value for an iterable connection with ``extra``."""
    return json.dumps({"conn_type": "iterable", "password": "api-key-not-used-here", "extra": extra})


def default_connection() -> str:
    """The test connection: two secrets (rotation), the default header."""
    return connection_json(webhook_secrets=[SECRET, OLD_SECRET])


def auth_headers(secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def system_body(n: int, **extra: Any) -> dict[str, Any]:
    """An Iterable-shaped ``emailSend`` system webhook, distinct per ``n``."""
    return {
        "email": f"user{n}@example.com",
        "eventName": "emailSend",
        "dataFields": {
            "campaignId": 1001,
            "templateId": 2002,
            "messageId": f"{n:032x}",
            "createdAt": "2026-11-27 03:05:00 +00:00",
            "workflowId": None,
        },
        **extra,
    }


class ReceiverProcess:
    """``iterable-webhooks serve`` in a subprocess on a free loopback port.

    :param queue_url: The event queue it writes to.
    :param env: Extra environment (connections) for the process.
    :param workers: uvicorn worker processes.
    :param extra_args: More ``serve`` arguments.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        env: dict[str, str] | None = None,
        workers: int = 1,
        extra_args: list[str] | None = None,
        log_level: str = "warning",
    ) -> None:
        self.queue_url = queue_url
        self._env = {**os.environ, CONN_ENV: default_connection(), **(env or {})}
        self._args = [
            sys.executable,
            "-m",
            "airflow_provider_iterable.webhooks.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--queue-url",
            queue_url,
            "--workers",
            str(workers),
            "--log-level",
            log_level,
            *(extra_args or []),
        ]
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> ReceiverProcess:
        self.output = []
        self.proc = subprocess.Popen(
            self._args,
            env=self._env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        found = threading.Event()
        proc = self.proc

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.output.append(line)
                match = _LISTENING.search(line)
                if match and not found.is_set():
                    self.url = match.group(1)
                    found.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not found.wait(timeout):
            self.kill()
            raise RuntimeError("receiver did not start:\n" + "".join(self.output))
        # The socket is listening once the line is printed, but the app may still be loading.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/health", timeout=10)
                return self
            except httpx.TransportError:
                if proc.poll() is not None:
                    raise RuntimeError("receiver exited:\n" + "".join(self.output)) from None
                time.sleep(0.1)
        self.kill()
        raise RuntimeError("receiver did not answer /health")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the receiver process alone, as a crash would: its writer process gets no signal."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop gracefully, SIGKILL after 15 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> ReceiverProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="module")
def airflow_logging(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Let Airflow set up its logging (it does on first use, replacing the root handlers) before
    a test's call phase, where pytest adds its capturing handler."""
    from fastapi.testclient import TestClient

    from airflow_provider_iterable.webhooks import create_app
    from airflow_provider_iterable.webhooks.connections import lookup_airflow_connection

    lookup_airflow_connection("not_defined_anywhere")
    url = f"sqlite:///{tmp_path_factory.mktemp('warm') / 'queue.db'}"
    with TestClient(create_app(queue_url=url)) as client:
        client.get("/health")


@pytest.fixture
def conn_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """Define the test connection in this process's environment; return its id."""
    monkeypatch.setenv(CONN_ENV, default_connection())
    return CONN_ID


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh queue URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def receiver(queue_url: str) -> Iterator[ReceiverProcess]:
    """A standalone receiver process writing to ``queue_url``."""
    with ReceiverProcess(queue_url) as proc:
        yield proc


class ThreadedServer:
    """A uvicorn server for ``app`` in a thread of this process, on a free loopback port.

    For tests that need an app built with non-default arguments (a short busy timeout).
    """

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def post(
    url: str, body: Any, *, path: str = f"/webhooks/{CONN_ID}/system", timeout: float = 30
) -> httpx.Response:
    """POST ``body`` as JSON with the test secret."""
    return httpx.post(url + path, json=body, headers=auth_headers(), timeout=timeout)


def count_rows(queue_url: str) -> int:
    """Return how many events the queue holds."""
    from airflow_provider_iterable.event_queue import EventQueue

    queue = EventQueue(queue_url)
    try:
        return len(queue.fetch(limit=10_000))
    finally:
        queue.close()


def writer_processes(root: int) -> list[int]:
    """Return the writer processes among the descendants of ``root`` (from ``/proc``)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # exited meanwhile
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    family, found = {root}, True
    while found:
        found = False
        for pid, parent in parents.items():
            if parent in family and pid not in family:
                family.add(pid)
                found = True
    writers = []
    for pid in family - {root}:
        with contextlib.suppress(OSError):
            if b"writer_process" in Path(f"/proc/{pid}/cmdline").read_bytes():
                writers.append(pid)
    return writers


def process_running(pid: int) -> bool:
    """Return whether process ``pid`` exists and has not exited."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's bookkeeping is left
