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
import time

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
