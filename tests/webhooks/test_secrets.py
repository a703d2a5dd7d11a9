"""R14 for the receiver: webhook secrets never reach a log, an answer or an exception."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from airflow_provider_iterable.webhooks import create_app
from airflow_provider_iterable.webhooks.auth import auth_from_extra
from tests.webhooks.conftest import CONN_ENV, CONN_ID, ReceiverProcess, connection_json, system_body

ROTATED = ["first-secret-a1b2c3", "second-secret-d4e5f6"]
SYSTEM = f"/webhooks/{CONN_ID}/system"


def deliveries(client_post: object) -> list[httpx.Response]:
    """Every kind of delivery that could make a secret show up somewhere."""
    send = client_post  # type: ignore[assignment]
    answers = []
    for header in (
        f"Bearer {ROTATED[0]}",
        f"Basic {ROTATED[1]}",
        f"Bearer {ROTATED[0]}-wrong",
        f"Token {ROTATED[1]}",
        "Bearer nothing-like-it",
    ):
        answers.append(send(SYSTEM, json=system_body(len(answers)), headers={"Authorization": header}))
        answers.append(
            send(
                SYSTEM,
                content=b"{broken",
                headers={"Authorization": header, "Content-Type": "application/json"},
            )
        )
    answers.append(send(SYSTEM + f"?token={ROTATED[0]}", json=system_body(99), headers={}))
    return answers


def assert_secret_free(text: str) -> None:
    joined = ",".join(ROTATED)
    for secret in [*ROTATED, joined]:
        assert secret not in text


def test_secrets_absent_from_debug_logs_and_answers(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, caplog: pytest.LogCaptureFixture, airflow_logging: None
) -> None:
    # One comma-separated string: each secret must be handled on its own.
    monkeypatch.setenv(CONN_ENV, connection_json(webhook_secrets=" , ".join(ROTATED)))
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(queue_url=sqlite_url), raise_server_exceptions=False) as client:
        answers = deliveries(client.post)
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 2 and 401 in statuses and 400 in statuses
    for answer in answers:
        assert_secret_free(answer.text)
        assert_secret_free(json.dumps(dict(answer.headers)))
    records = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert any(r.levelno == logging.DEBUG and CONN_ID in r.getMessage() for r in caplog.records)
    assert_secret_free(records)


def test_each_secret_is_masked_individually() -> None:
    from airflow.sdk._shared.secrets_masker import redact

    extra = {"webhook_secrets": ",".join(ROTATED)}
    auth = auth_from_extra(extra)
    for secret in ROTATED:
        assert secret not in str(redact(f"the header was Bearer {secret} then"))
    assert ROTATED[0] not in repr(auth) and ROTATED[1] not in repr(auth)


def test_invalid_secret_setting_refuses_and_does_not_log_the_value(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, caplog: pytest.LogCaptureFixture, airflow_logging: None
) -> None:
    monkeypatch.setenv(CONN_ENV, connection_json(webhook_secrets={"oops": ROTATED[0]}))
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(queue_url=sqlite_url)) as client:
        answer = client.post(SYSTEM, json=system_body(1), headers={"Authorization": f"Bearer {ROTATED[0]}"})
    assert answer.status_code == 401
    assert any("invalid webhook settings" in r.getMessage() for r in caplog.records)
    assert_secret_free(caplog.text + answer.text)


def test_secrets_absent_from_a_debug_receiver_process_output(tmp_path: Path) -> None:
    # The standalone receiver logs through Airflow's logging set-up, at Airflow's level.
    env = {
        CONN_ENV: connection_json(webhook_secrets=",".join(ROTATED)),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
    }
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    receiver = ReceiverProcess(url, env=env, log_level="debug", extra_args=["--access-log"])
    with receiver, httpx.Client(base_url=receiver.url, timeout=30) as client:
        answers = deliveries(client.post)
    assert [a.status_code for a in answers].count(200) == 2
    output = "".join(receiver.output)
    # DEBUG logging was on: the receiver's line per delivery is there.
    assert f"Webhook system for {CONN_ID}: event" in output
    # A secret a sender puts in the URL itself is the sender's doing (access logs show URLs).
    assert_secret_free(output.replace(f"token={ROTATED[0]}", ""))
