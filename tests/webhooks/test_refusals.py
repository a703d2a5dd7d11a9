"""A wrong webhook secret does not fail silently: refusals are logged, rate limited, secret-free."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from airflow_provider_iterable.webhooks import create_app
from airflow_provider_iterable.webhooks.refusals import RefusalLog, sender_address
from tests.webhooks.conftest import (
    CONN_ENV,
    CONN_ID,
    OLD_SECRET,
    SECRET,
    ReceiverProcess,
    connection_json,
    post,
    system_body,
)

SYSTEM = f"/webhooks/{CONN_ID}/system"


class Lines(logging.Handler):
    """Keep the messages logged to one logger."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        assert record.levelno == logging.WARNING
        self.lines.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, Lines]]:
    logger = logging.getLogger(f"test.refusals.{id(object())}")
    logger.propagate = False
    handler = Lines()
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)


def test_one_line_per_connection_and_reason_per_interval(lines: tuple[logging.Logger, Lines]) -> None:
    logger, handler = lines
    now = [1000.0]
    refusals = RefusalLog(interval=60, clock=lambda: now[0], logger=logger)
    for _ in range(5):
        refusals.report("proj_a", 401, "wrong secret in the header Authorization", "10.0.0.1")
    refusals.report("proj_a", 401, "no secret in the header Authorization", "10.0.0.1")
    refusals.report("proj_b", 401, "wrong secret in the header Authorization", "10.0.0.2")
    assert handler.lines == [
        "Webhook delivery for connection 'proj_a' refused with 401: wrong secret in the header "
        "Authorization; sender 10.0.0.1",
        "Webhook delivery for connection 'proj_a' refused with 401: no secret in the header "
        "Authorization; sender 10.0.0.1",
        "Webhook delivery for connection 'proj_b' refused with 401: wrong secret in the header "
        "Authorization; sender 10.0.0.2",
    ]
    now[0] += 59.9
    refusals.report("proj_a", 401, "wrong secret in the header Authorization", "10.0.0.1")
    assert len(handler.lines) == 3
    now[0] += 0.1
    refusals.report("proj_a", 401, "wrong secret in the header Authorization", "10.0.0.3")
    assert handler.lines[3] == (
        "Webhook delivery for connection 'proj_a' refused with 401: wrong secret in the header "
        "Authorization; sender 10.0.0.3 (5 more like it since the last report)"
    )
    refusals.report("proj_a", 401, "wrong secret in the header Authorization", "10.0.0.3")
    refusals.flush()
    assert handler.lines[4:] == [
        "Webhook deliveries for connection 'proj_a': 1 more refused (wrong secret in the header "
        "Authorization) since the last report"
    ]


def test_sender_address_quotes_and_cuts_a_forwarded_header() -> None:
    assert sender_address("127.0.0.1", None) == "127.0.0.1"
    assert sender_address(None, "54.1.2.3, 10.0.0.1") == "unknown (X-Forwarded-For '54.1.2.3, 10.0.0.1')"
    assert sender_address("10.0.0.9", "x\n" * 500).count("x") == 50


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "airflow_provider_iterable.webhooks"
    ]


def test_wrong_secret_is_logged_once_without_the_header_or_body(
    conn_env: str, sqlite_url: str, caplog: pytest.LogCaptureFixture, airflow_logging: None
) -> None:
    caplog.set_level(logging.INFO)
    tried = "Bearer not-the-secret-0a9f"
    body = system_body(1, email="private.person@example.com")
    with TestClient(create_app(queue_url=sqlite_url, writer="thread")) as client:
        for _ in range(10):
            answer = client.post(
                SYSTEM, json=body, headers={"Authorization": tried, "X-Forwarded-For": "54.1.2.3"}
            )
            assert (answer.status_code, answer.json()["detail"]) == (401, "missing or invalid webhook secret")
        assert client.post(SYSTEM, json=body).status_code == 401
    assert _warnings(caplog) == [
        f"Webhook delivery for connection '{CONN_ID}' refused with 401: wrong secret in the header "
        "Authorization; sender testclient (X-Forwarded-For '54.1.2.3')",
        f"Webhook delivery for connection '{CONN_ID}' refused with 401: no secret in the header "
        "Authorization; sender testclient",
        # Said when the receiver stops.
        f"Webhook deliveries for connection '{CONN_ID}': 9 more refused (wrong secret in the header "
        "Authorization) since the last report",
    ]
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for private in ("not-the-secret-0a9f", "private.person@example.com", SECRET, OLD_SECRET):
        assert private not in logged


def test_a_connection_without_a_secret_says_so(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, caplog: pytest.LogCaptureFixture, airflow_logging: None
) -> None:
    monkeypatch.setenv(CONN_ENV, connection_json(region="us"))
    caplog.set_level(logging.INFO)
    with TestClient(create_app(queue_url=sqlite_url, writer="thread")) as client:
        answer = client.post(SYSTEM, json=system_body(1), headers={"Authorization": f"Bearer {SECRET}"})
    assert answer.status_code == 401
    assert answer.json()["detail"] == (
        "no webhook secret is configured for this connection: set webhook_secrets in its extra "
        '(or "webhook_auth": "none")'
    )
    assert _warnings(caplog) == [
        f"Webhook delivery for connection '{CONN_ID}' refused with 401: no webhook secret configured "
        "for the connection; sender testclient"
    ]


def test_a_custom_header_that_is_missing_is_named(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, caplog: pytest.LogCaptureFixture, airflow_logging: None
) -> None:
    monkeypatch.setenv(
        CONN_ENV, connection_json(webhook_secrets=[SECRET], webhook_secret_header="X-Iterable-Token")
    )
    caplog.set_level(logging.INFO)
    with TestClient(create_app(queue_url=sqlite_url, writer="thread")) as client:
        # Iterable sends the token in Authorization while the connection expects the custom header.
        answer = client.post(SYSTEM, json=system_body(1), headers={"Authorization": f"Bearer {SECRET}"})
    assert answer.status_code == 401
    assert _warnings(caplog) == [
        f"Webhook delivery for connection '{CONN_ID}' refused with 401: no secret in the header "
        "X-Iterable-Token; sender testclient"
    ]
    assert SECRET not in caplog.text


def test_the_standalone_receiver_logs_a_wrong_secret(tmp_path: Path) -> None:
    with ReceiverProcess(f"sqlite:///{tmp_path / 'queue.db'}") as receiver:
        assert post(receiver.url, system_body(1)).status_code == 200
        refused = httpx.post(
            receiver.url + SYSTEM, json=system_body(2), headers={"Authorization": "Basic nope"}
        )
        assert refused.status_code == 401
    output = "".join(receiver.output)
    assert (
        f"Webhook delivery for connection '{CONN_ID}' refused with 401: wrong secret in the header "
        "Authorization; sender 127.0.0.1"
    ) in output
    assert "Basic nope" not in output and "user2@example.com" not in output
