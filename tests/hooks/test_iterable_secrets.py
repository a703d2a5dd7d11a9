"""R14 for the hook: the API key (and the receiver's webhook secrets) reach no log, error or message."""

from __future__ import annotations

import logging
import pickle
import secrets
import traceback
from collections.abc import Iterator

import pytest
import requests

from airflow_provider_iterable.exceptions import (
    IterableApiError,
    IterableAuthError,
    IterableConnectionError,
    IterableError,
    IterableOutcomeUnknownError,
    IterableRateLimitError,
)
from airflow_provider_iterable.hooks.iterable import IterableHook
from airflow_provider_iterable.testing import IterableSimulator

from .conftest import HookLogs, new_conn_id, set_connection


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__]


def test_api_key_and_webhook_secrets_never_leak(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    hook_logs: HookLogs,
    closed_port: int,
):
    api_key = secrets.token_hex(16)
    wrong_key = secrets.token_hex(16)
    webhook_secret = "whsec-" + secrets.token_hex(12)
    rotated_secret = "whsec-" + secrets.token_hex(12)
    caplog.set_level(logging.DEBUG)  # urllib3 and requests log through the standard library
    texts: list[str] = []
    errors: list[IterableError] = []

    def attempt(call) -> None:  # type: ignore[no-untyped-def]
        try:
            call()
        except IterableError as exc:
            errors.append(exc)

    with IterableSimulator(api_key=api_key) as sim:
        sim.add_user(email="a@example.com")
        extra = {
            "webhook_secrets": f"{webhook_secret},{rotated_secret}",
            "webhook_secret_header": "Authorization",
            "timeout": 0.3,
        }
        conn_id = new_conn_id()
        set_connection(
            monkeypatch,
            conn_id,
            {"conn_type": "iterable", "host": sim.url, "password": api_key, "extra": extra},
        )
        hook = IterableHook(conn_id, retry_deadline=2)
        hook.upsert_user(email="a@example.com", data_fields={"plan": "pro"})
        hook.get_user_by_email("a@example.com")
        texts.append(repr(hook.test_connection()))

        sim.add_fault("POST /api/users/update", status=500)
        hook.upsert_user(email="a@example.com")  # retried, logged at WARNING
        # A server that echoes the key back (in msg or params) still cannot put it in an error.
        sim.add_fault(
            "POST /api/users/update",
            status=400,
            body={"code": "BadParams", "msg": f"Invalid {api_key}", "params": {"echo": [api_key]}},
        )
        attempt(lambda: hook.upsert_user(email="a@example.com"))
        sim.add_fault("GET /api/lists", status=429, headers={"Retry-After": "3600"})
        attempt(hook.get_lists)
        sim.add_fault("POST /api/sms/target", delay=1.0)
        attempt(lambda: hook.send_sms(campaign_id=2001, recipient_email="a@example.com"))
        sim.add_fault("GET /api/channels", delay=1.0, times=20)
        attempt(hook.get_channels)  # safe: read timeouts retried until the deadline

        wrong_conn = new_conn_id()
        set_connection(
            monkeypatch, wrong_conn, {"conn_type": "iterable", "host": sim.url, "password": wrong_key}
        )
        wrong = IterableHook(wrong_conn)
        attempt(wrong.get_lists)
        texts.append(repr(wrong.test_connection()))

    unreachable_conn = new_conn_id()
    set_connection(
        monkeypatch,
        unreachable_conn,
        {"conn_type": "iterable", "host": f"http://127.0.0.1:{closed_port}", "password": api_key},
    )
    unreachable = IterableHook(unreachable_conn, max_attempts=2)
    attempt(unreachable.get_lists)
    texts.append(repr(unreachable.test_connection()))

    assert [type(e) for e in errors] == [
        IterableApiError,
        IterableRateLimitError,
        IterableOutcomeUnknownError,
        IterableConnectionError,
        IterableAuthError,
        IterableConnectionError,
    ]
    for error in errors:
        for linked in exception_chain(error):
            # A requests exception holds the prepared request, Api-Key header included.
            assert not isinstance(linked, requests.RequestException)
            texts += [str(linked), repr(linked)]
        texts.append("".join(traceback.format_exception(error)))
        texts.append(str(pickle.loads(pickle.dumps(error))))
    texts += [caplog.text, hook_logs.text, *capsys.readouterr()]
    # The log holds what was expected, so the checks below looked at real output.
    assert any(
        "attempt 1 failed (HTTP 500 GenericError); retrying" in m for m in hook_logs.messages("warning")
    )
    assert any("answered HTTP 200" in m for m in hook_logs.messages("debug"))
    assert "GET /api/users/getByEmail" in caplog.text  # urllib3's DEBUG request line

    everything = "\n".join(texts)
    for secret in (api_key, wrong_key, webhook_secret, rotated_secret):
        assert secret not in everything


def test_the_api_key_is_registered_with_airflow_s_secrets_masker(monkeypatch: pytest.MonkeyPatch):
    from airflow.sdk.log import redact

    api_key = secrets.token_hex(16)
    with IterableSimulator(api_key=api_key) as sim:
        conn_id = new_conn_id()
        set_connection(monkeypatch, conn_id, {"conn_type": "iterable", "host": sim.url, "password": api_key})
        IterableHook(conn_id).get_channels()
    assert api_key not in str(redact(f"the key is {api_key}"))
