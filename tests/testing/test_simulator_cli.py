"""``python -m airflow_provider_iterable.testing`` starts a simulator, answers, and stops on a signal."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from airflow_provider_iterable.testing.__main__ import build_parser, main


def _start(*args: str) -> tuple[subprocess.Popen[str], str, dict]:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_iterable.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    url = conn = None
    while time.monotonic() < deadline and (url is None or conn is None):
        line = process.stdout.readline()
        if not line:
            break
        if found := re.search(r"listening on (http://\S+)", line):
            url = found.group(1)
        if line.startswith("export AIRFLOW_CONN_ITERABLE_DEFAULT="):
            conn = json.loads(shlex.split(line.split("=", 1)[1])[0])
    if url is None or conn is None:
        process.kill()
        pytest.fail(f"simulator did not start: {process.stderr.read() if process.stderr else ''}")
    return process, url, conn


def test_module_entry_point_serves_and_stops_on_sigterm() -> None:
    process, url, conn = _start("--api-key", "feedfacefeedfacefeedfacefeedface", "--no-rate-limits")
    try:
        assert conn["host"] == url
        assert conn["password"] == "feedfacefeedfacefeedfacefeedface"
        assert conn["conn_type"] == "iterable"
        session = requests.Session()
        session.headers["Api-Key"] = conn["password"]
        assert session.get(url + "/api/channels", timeout=5).status_code == 200
        # --no-rate-limits: far beyond bulkUpdate's 5/s without a 429.
        statuses = {
            session.post(url + "/api/users/bulkUpdate", json={"users": []}, timeout=5).status_code
            for _ in range(20)
        }
        assert statuses == {200}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/api/channels", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def test_module_entry_point_stops_on_sigint() -> None:
    process, url, _ = _start("--rate-limit-scale", "10")
    try:
        assert requests.get(url + "/api/channels", timeout=5).status_code == 401
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def test_parser_reads_webhook_headers() -> None:
    args = build_parser().parse_args(
        [
            "--webhook-url",
            "http://127.0.0.1:1/x",
            "--webhook-header",
            "Authorization: Bearer a:b",
            "--webhook-header",
            "X-K: v",
        ]
    )
    assert dict(args.webhook_header) == {"Authorization": "Bearer a:b", "X-K": "v"}
    assert args.webhook_url == "http://127.0.0.1:1/x"


@pytest.mark.parametrize(
    "bad", [["--webhook-header", "no-colon"], ["--rate-limit-scale", "0"], ["--rate-limit-scale", "x"]]
)
def test_parser_rejects_bad_values(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(bad)
    assert bad[0] in capsys.readouterr().err


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "airflow_provider_iterable.testing", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_port_out_of_range_is_refused() -> None:
    assert main(["--port", "70000"]) == 2


# ------------------------------------------------------------- webhooks from the command line
class _Cli:
    """The simulator's command in a subprocess, its stdout and stderr read by threads."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_iterable.testing", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        for stream, lines in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr)):
            threading.Thread(
                target=lambda s=stream, out=lines: out.extend(iter(s.readline, "")), daemon=True
            ).start()
        self.url = ""
        self.exports: dict[str, dict] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            line.startswith("Press Ctrl-C") for line in self.stdout
        ):
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        for line in self.stdout:
            if found := re.search(r"listening on (http://\S+)", line):
                self.url = found.group(1)
            if line.startswith("export AIRFLOW_CONN_"):
                name, _, value = line.removeprefix("export ").partition("=")
                self.exports[name] = json.loads(shlex.split(value)[0])
        if not self.url:
            self.stop()
            pytest.fail(f"simulator did not start: {''.join(self.stderr)}")

    def send_email(self, email: str = "ada@example.com") -> None:
        key = self.exports["AIRFLOW_CONN_ITERABLE_DEFAULT"]["password"]
        answer = requests.post(
            self.url + "/api/email/target",
            json={"campaignId": 1001, "recipientEmail": email},
            headers={"Api-Key": key},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

    def wait_for_stderr(self, pattern: str, timeout: float = 20) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [line for line in list(self.stderr) if re.search(pattern, line)]
            if lines:
                return lines
            time.sleep(0.05)
        pytest.fail(f"nothing on stderr matched {pattern!r}: {self.stderr}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@pytest.fixture
def webhook_receiver(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The provider's real receiver on loopback; yields its base URL and its queue URL."""
    from airflow_provider_iterable.webhooks import create_app
    from tests.webhooks.conftest import ThreadedServer

    queue_url = f"sqlite:///{tmp_path / 'queue.db'}"
    with ThreadedServer(create_app(queue_url=queue_url, purge_interval_seconds=0)) as server:
        yield server.url, queue_url


def _stored_events(queue_url: str, timeout: float = 20) -> int:
    from tests.webhooks.conftest import count_rows

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count := count_rows(queue_url):
            return count
        time.sleep(0.1)
    return 0


@pytest.mark.parametrize(
    "header",
    [
        ["--webhook-header", "Authorization: Bearer s3cret-cli"],
        ["--webhook-header", "Authorization: Basic s3cret-cli"],
        ["--webhook-header", "Authorization: s3cret-cli"],
        ["--webhook-header", "X-Trace: t-1", "--webhook-header", "authorization: OAuth2 s3cret-cli"],
        ["--webhook-header", "X-Iterable-Secret: s3cret-cli"],
        [],
    ],
    ids=["bearer", "basic", "bare", "authorization-among-others", "custom-header", "no-secret"],
)
def test_pasting_the_printed_connection_makes_the_receiver_accept_its_webhooks(
    header: list[str], webhook_receiver: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver_url, queue_url = webhook_receiver
    cli = _Cli("--webhook-url", f"{receiver_url}/webhooks/iterable_default/system", *header)
    try:
        conn = cli.exports["AIRFLOW_CONN_ITERABLE_DEFAULT"]
        assert conn["host"] == cli.url
        # What docs/testing.md says to do with the line: put it in the environment of Airflow.
        monkeypatch.setenv("AIRFLOW_CONN_ITERABLE_DEFAULT", json.dumps(conn))
        cli.send_email()
        assert _stored_events(queue_url) == 1
    finally:
        cli.stop()
    # A first delivery may time out while the receiver warms up on a busy machine; none is refused.
    assert not [line for line in cli.stderr if "HTTP 4" in line]


def test_the_receivers_connection_is_printed_when_the_url_names_another(
    webhook_receiver: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver_url, queue_url = webhook_receiver
    cli = _Cli(
        "--webhook-url",
        f"{receiver_url}/webhooks/iterable_staging/system",
        "--webhook-header",
        "Authorization: Bearer s3cret-staging",
    )
    try:
        assert set(cli.exports) == {"AIRFLOW_CONN_ITERABLE_DEFAULT", "AIRFLOW_CONN_ITERABLE_STAGING"}
        monkeypatch.setenv(
            "AIRFLOW_CONN_ITERABLE_STAGING", json.dumps(cli.exports["AIRFLOW_CONN_ITERABLE_STAGING"])
        )
        cli.send_email()
        assert _stored_events(queue_url) == 1
    finally:
        cli.stop()


def test_a_refused_delivery_is_printed_on_stderr(
    webhook_receiver: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver_url, queue_url = webhook_receiver
    monkeypatch.setenv(
        "AIRFLOW_CONN_ITERABLE_DEFAULT",
        json.dumps({"conn_type": "iterable", "extra": {"webhook_secrets": ["the-right-secret"]}}),
    )
    url = f"{receiver_url}/webhooks/iterable_default/system"
    cli = _Cli(
        "--webhook-url", url + "?token=query-secret", "--webhook-header", "Authorization: Bearer wrong-secret"
    )
    try:
        cli.send_email("refused@example.com")
        first = cli.wait_for_stderr(r"attempt 1 of 4")[0]
        last = cli.wait_for_stderr(r"attempt 4 of 4, giving up")[0]
    finally:
        cli.stop()
    for line in (first, last):
        assert "emailSend" in line
        assert "HTTP 401" in line
        assert url in line
        assert "webhook_secrets" in line
    # stdout holds the connection, secret included, on purpose; stderr must hold no secret.
    printed = "".join(cli.stderr)
    assert "wrong-secret" not in printed
    assert "query-secret" not in printed
    assert "refused@example.com" not in printed
    assert _stored_events(queue_url, timeout=0.5) == 0


def test_an_unreachable_receiver_is_printed_on_stderr() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/webhooks/iterable_default/system"
    cli = _Cli("--webhook-url", url, "--webhook-header", "Authorization: Bearer s3cret")
    try:
        cli.send_email()
        line = cli.wait_for_stderr(r"attempt 1 of 4")[0]
    finally:
        cli.stop()
    assert f"webhook emailSend to {url} failed: no answer (ConnectionError)" in line
