"""R3 and R4: only holders of the secret get in; bad input gets a clear 4xx and stores nothing.

Each test starts from one valid delivery and changes one thing. The app runs in-process behind
Starlette's test client (a real ASGI stack, a real SQLite queue, the connection from a real
``AIRFLOW_CONN_*`` variable).
"""

from __future__ import annotations

import gzip
import hmac
import inspect
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from airflow_provider_iterable.event_queue import EventQueue
from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.webhooks import ReceiverSettings, create_app
from airflow_provider_iterable.webhooks import auth as auth_module
from tests.webhooks.conftest import (
    CONN_ENV,
    CONN_ID,
    OLD_SECRET,
    SECRET,
    auth_headers,
    connection_json,
    system_body,
)

SYSTEM = f"/webhooks/{CONN_ID}/system"
JOURNEYS = f"/webhooks/{CONN_ID}/journeys"
LIMIT = 8192
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def client(conn_env: str, sqlite_url: str) -> Iterator[TestClient]:
    # The thread writer: the validation matrix does not depend on where the writes run, and
    # the process writer (the default) is exercised by every test against a receiver process.
    app = create_app(queue_url=sqlite_url, max_body_bytes=LIMIT, dedupe_window_seconds=3600, writer="thread")
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def stored(sqlite_url: str) -> Iterator[Any]:
    queue = EventQueue(sqlite_url)

    def fetch() -> list[Any]:
        return queue.fetch(limit=10_000)

    yield fetch
    queue.close()


def post_json(
    client: TestClient, body: Any, path: str = SYSTEM, headers: dict[str, str] | None = None
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        path, content=raw, headers={"Content-Type": "application/json", **auth_headers(), **(headers or {})}
    )


def assert_refused(response: Any, status: int, stored: Any, *, secret_free: bool = True) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert "Traceback" not in response.text
    if secret_free:
        assert SECRET not in response.text and OLD_SECRET not in response.text
    assert stored() == []


# -- the valid delivery ------------------------------------------------------------------------


def test_valid_system_webhook_is_stored_and_classified(client: TestClient, stored: Any) -> None:
    body = system_body(1, userId="u-1")
    body["dataFields"]["workflowId"] = 3001
    response = post_json(client, body, path=SYSTEM + "?campaignId=77&tag=a&tag=b")
    assert response.status_code == 200
    assert response.json()["status"] == "stored"
    (event,) = stored()
    assert response.json()["id"] == event.id
    assert (event.conn_id, event.kind, event.event_name) == (CONN_ID, "system", "emailSend")
    assert (event.workflow_id, event.campaign_id) == (3001, 1001)
    assert (event.email, event.user_id) == ("user1@example.com", "u-1")
    assert event.payload == body
    assert event.query == {"campaignId": "77", "tag": ["a", "b"]}


def test_campaign_id_falls_back_to_query_and_user_id_to_data_fields(client: TestClient, stored: Any) -> None:
    body = {"eventName": "smsSend", "dataFields": {"userId": "u-9", "workflowId": "12"}}
    assert post_json(client, body, path=SYSTEM + "?campaignId=55").status_code == 200
    (event,) = stored()
    assert (event.campaign_id, event.user_id, event.workflow_id, event.email) == (55, "u-9", 12, None)


def test_overlong_event_name_is_stored_with_its_column_empty(client: TestClient, stored: Any) -> None:
    # Iterable keeps retrying a 5xx: a valid delivery whose name does not fit the indexed column
    # must still be stored (the payload keeps the name; a sensor's match can find it there).
    body = system_body(1, eventName="e" * 300)
    response = post_json(client, body)
    assert response.status_code == 200, response.text
    (event,) = stored()
    assert (event.event_name, event.email, event.payload) == (None, "user1@example.com", body)


@pytest.mark.parametrize(
    ("field", "value"),
    [("email", ["a@example.com", "b@example.com"]), ("userId", 10**30), ("email", {"a": 1}), ("userId", 1.5)],
)
def test_odd_values_at_classified_fields_are_stored(
    client: TestClient, stored: Any, field: str, value: Any
) -> None:
    body = system_body(1, **{field: value})
    body["dataFields"]["campaignId"] = 10**30
    assert post_json(client, body).status_code == 200
    (event,) = stored()
    assert event.payload == body
    assert event.campaign_id is None


# -- R3: the secret ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {SECRET}",
        f"Basic {SECRET}",
        f"OAuth2 {SECRET}",
        SECRET,
        f"bearer  {SECRET}",
        f"Bearer {OLD_SECRET}",
    ],
    ids=["bearer", "basic", "oauth2", "bare", "lower-case-scheme", "previous-secret"],
)
def test_accepted_secret_forms(client: TestClient, stored: Any, header: str) -> None:
    response = post_json(client, system_body(1), headers={"Authorization": header})
    assert response.status_code == 200, response.text
    assert len(stored()) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-secret-xyz"},
        {"Authorization": f"Token {SECRET}"},
        {"Authorization": f"Bearer {SECRET}x"},
        {"Authorization": f"Bearer {SECRET[:-1]}"},
        {"Authorization": "Bearer"},
        {"Authorization": ""},
        {"X-Other": SECRET},
    ],
    ids=["missing", "wrong", "wrong-scheme-word", "longer", "prefix", "scheme-only", "empty", "other-header"],
)
def test_refused_secret(client: TestClient, stored: Any, headers: dict[str, str]) -> None:
    response = client.post(SYSTEM, json=system_body(1), headers=headers)
    assert_refused(response, 401, stored)


def test_wrong_secret_and_malformed_body_is_401_not_400(client: TestClient, stored: Any) -> None:
    response = client.post(
        SYSTEM,
        content=b"{not json",
        headers={"Authorization": "Bearer nope", "Content-Type": "application/json"},
    )
    assert_refused(response, 401, stored)


def test_wrong_secret_and_oversize_body_is_401(client: TestClient, stored: Any) -> None:
    response = client.post(
        SYSTEM, content=b"x" * (LIMIT * 4), headers={"Authorization": "nope", "Content-Type": "text/plain"}
    )
    assert_refused(response, 401, stored)


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    auth = auth_module.auth_from_extra({"webhook_secrets": [SECRET, OLD_SECRET]})
    assert auth.check(f"Bearer {OLD_SECRET}")
    # Both candidates (whole value, value after the scheme word) against both secrets, no early exit.
    assert len(calls) == 4
    assert "compare_digest" in inspect.getsource(auth_module.WebhookAuth.check)


def test_custom_header_and_comma_separated_secrets(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, stored: Any
) -> None:
    monkeypatch.setenv(
        CONN_ENV,
        connection_json(webhook_secrets=f" {SECRET} ,{OLD_SECRET}", webhook_secret_header="X-Iterable-Token"),
    )
    with TestClient(create_app(queue_url=sqlite_url)) as client:
        assert post_json(client, system_body(1), headers={"X-Iterable-Token": OLD_SECRET}).status_code == 200
        assert post_json(client, system_body(2), headers={"x-iterable-token": SECRET}).status_code == 200
        # The Authorization header is not the configured one any more.
        response = client.post(SYSTEM, json=system_body(3), headers=auth_headers())
        assert response.status_code == 401
    assert len(stored()) == 2


def test_connection_without_secret_refuses_everything(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, stored: Any
) -> None:
    monkeypatch.setenv(CONN_ENV, connection_json())
    with TestClient(create_app(queue_url=sqlite_url)) as client:
        assert client.post(SYSTEM, json=system_body(1)).status_code == 401
        assert post_json(client, system_body(1)).status_code == 401
    assert stored() == []


def test_webhook_auth_none_allows_no_secret(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, stored: Any
) -> None:
    monkeypatch.setenv(CONN_ENV, connection_json(webhook_auth="none"))
    with TestClient(create_app(queue_url=sqlite_url)) as client:
        assert client.post(SYSTEM, json=system_body(1)).status_code == 200
    assert len(stored()) == 1


def test_webhook_auth_none_does_not_disable_a_configured_secret(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, stored: Any
) -> None:
    monkeypatch.setenv(CONN_ENV, connection_json(webhook_auth="none", webhook_secrets=[SECRET]))
    with TestClient(create_app(queue_url=sqlite_url)) as client:
        assert client.post(SYSTEM, json=system_body(1)).status_code == 401
    assert stored() == []


# -- routing: method, connection, journey ids ---------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_system_wrong_method_is_405(client: TestClient, stored: Any, method: str) -> None:
    response = client.request(method, SYSTEM, headers=auth_headers())
    assert_refused(response, 405, stored)
    assert response.headers["allow"] == "POST"


def test_wrong_method_comes_before_unknown_connection(client: TestClient, stored: Any) -> None:
    assert_refused(client.get("/webhooks/no_such_conn/system"), 405, stored)


def test_unknown_connection_is_404_before_secret(client: TestClient, stored: Any) -> None:
    assert_refused(client.post("/webhooks/no_such_conn/system", json=system_body(1)), 404, stored)


def test_connection_of_another_type_is_unknown(
    monkeypatch: pytest.MonkeyPatch, client: TestClient, stored: Any
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SOME_HTTP", json.dumps({"conn_type": "http", "extra": {"webhook_auth": "none"}})
    )
    assert_refused(client.post("/webhooks/some_http/system", json=system_body(1)), 404, stored)


def test_failed_connection_lookup_is_503_then_the_resend_is_stored(sqlite_url: str, stored: Any) -> None:
    backend_up = False

    def lookup(conn_id: str) -> dict[str, Any] | None:
        if not backend_up:
            raise ConnectionError("secrets backend unreachable")
        return {"webhook_secrets": [SECRET]} if conn_id == CONN_ID else None

    # No caching of unknown ids (nor, then, of failures): the recovery is seen at once.
    app = create_app(queue_url=sqlite_url, connection_lookup=lookup, unknown_conn_cache_seconds=0)
    with TestClient(app, raise_server_exceptions=False) as client:
        # The project may exist: not a 404, which the sender would take as final.
        response = post_json(client, system_body(1))
        assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
        assert "unreachable" not in response.text
        assert stored() == []
        backend_up = True
        assert post_json(client, system_body(1)).status_code == 200
        assert len(stored()) == 1


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/", "/webhooks", SYSTEM + "/"])
def test_no_documentation_or_other_routes(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_unknown_connection_ids_are_cached(client: TestClient) -> None:
    receiver = client.app.state.receiver  # type: ignore[attr-defined]
    for _ in range(20):
        assert client.post("/webhooks/made_up_id/system", json={}).status_code == 404
    assert receiver.connections.lookups == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_journey_json_with_id_in_path(client: TestClient, stored: Any, method: str) -> None:
    response = client.request(
        method,
        f"{JOURNEYS}/3001?campaignId=9",
        json={"email": "a@example.com", "userId": 42},
        headers=auth_headers(),
    )
    assert response.status_code == 200, response.text
    (event,) = stored()
    assert (event.kind, event.workflow_id, event.campaign_id, event.email, event.user_id) == (
        "journey",
        3001,
        9,
        "a@example.com",
        "42",
    )
    assert event.event_name is None


def test_journey_form_body_keeps_repeated_keys(client: TestClient, stored: Any) -> None:
    response = client.post(
        f"{JOURNEYS}?workflowId=3001",
        content=b"email=a%40example.com&tag=x&tag=y&empty=",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8", **auth_headers()},
    )
    assert response.status_code == 200, response.text
    (event,) = stored()
    assert event.payload == {"email": "a@example.com", "tag": ["x", "y"], "empty": ""}
    assert (event.workflow_id, event.email, event.query) == (3001, "a@example.com", {"workflowId": "3001"})


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_bodyless_journey_call_stores_query_as_payload(client: TestClient, stored: Any, method: str) -> None:
    response = client.request(
        method, f"{JOURNEYS}/3001?email=b%40example.com&userId=u7", headers=auth_headers()
    )
    assert response.status_code == 200, response.text
    (event,) = stored()
    assert event.payload == event.query == {"email": "b@example.com", "userId": "u7"}
    assert (event.workflow_id, event.email, event.user_id) == (3001, "b@example.com", "u7")


def test_journey_id_from_payload(client: TestClient, stored: Any) -> None:
    assert post_json(client, {"workflowId": 3002, "email": "c@example.com"}, path=JOURNEYS).status_code == 200
    assert stored()[0].workflow_id == 3002


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (f"{JOURNEYS}/abc", {"email": "a@example.com"}, 404),
        (f"{JOURNEYS}/-1", {"email": "a@example.com"}, 404),
        (f"{JOURNEYS}/99999999999999999999", {"email": "a@example.com"}, 404),
        (f"{JOURNEYS}?workflowId=abc", {"email": "a@example.com"}, 404),
        (JOURNEYS, {"email": "a@example.com"}, 400),
        (JOURNEYS, {"workflowId": "abc"}, 400),
        (JOURNEYS, {"workflowId": True}, 400),
    ],
    ids=["path-text", "path-negative", "path-huge", "query-text", "no-id", "payload-text", "payload-bool"],
)
def test_journey_id_errors(client: TestClient, stored: Any, path: str, body: Any, status: int) -> None:
    assert_refused(post_json(client, body, path=path), status, stored)


# -- R4: content type, body, parse --------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
    ],
)
def test_system_unsupported_content_type_is_415(
    client: TestClient, stored: Any, content_type: str | None
) -> None:
    headers = auth_headers() | ({"Content-Type": content_type} if content_type else {})
    response = client.post(SYSTEM, content=json.dumps(system_body(1)).encode(), headers=headers)
    assert_refused(response, 415, stored)


def test_system_refuses_form_bodies(client: TestClient, stored: Any) -> None:
    response = client.post(
        SYSTEM,
        content=b"email=a%40example.com",
        headers={"Content-Type": "application/x-www-form-urlencoded", **auth_headers()},
    )
    assert_refused(response, 415, stored)


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", "br", "deflate", "identity, gzip", "x-custom"])
def test_encoded_body_is_415(client: TestClient, stored: Any, encoding: str) -> None:
    # A plain body that claims an encoding: read as it is, it would be stored as something else.
    response = post_json(client, system_body(1), headers={"Content-Encoding": encoding})
    assert_refused(response, 415, stored)
    assert "encoding" in response.json()["detail"]


def test_gzip_body_is_415_not_400(client: TestClient, stored: Any) -> None:
    raw = gzip.compress(json.dumps(system_body(1)).encode())
    assert_refused(post_json(client, raw, headers={"Content-Encoding": "gzip"}), 415, stored)
    form = gzip.compress(b"email=a%40example.com")
    response = client.post(
        f"{JOURNEYS}/1",
        content=form,
        headers={"Content-Type": FORM, "Content-Encoding": "gzip", **auth_headers()},
    )
    assert_refused(response, 415, stored)


@pytest.mark.parametrize("encoding", ["identity", "Identity", ""])
def test_identity_encoding_is_read(client: TestClient, stored: Any, encoding: str) -> None:
    assert post_json(client, system_body(1), headers={"Content-Encoding": encoding}).status_code == 200
    assert len(stored()) == 1


def test_wrong_secret_and_gzip_body_is_401(client: TestClient, stored: Any) -> None:
    raw = gzip.compress(json.dumps(system_body(1)).encode())
    response = client.post(
        SYSTEM,
        content=raw,
        headers={
            "Authorization": "Bearer nope",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert_refused(response, 401, stored)


def test_content_type_is_checked_before_size(client: TestClient, stored: Any) -> None:
    response = client.post(
        SYSTEM, content=b"x" * (LIMIT + 10), headers={"Content-Type": "text/plain", **auth_headers()}
    )
    assert_refused(response, 415, stored)


def test_size_is_checked_before_parse(client: TestClient, stored: Any) -> None:
    assert_refused(post_json(client, b"{" * (LIMIT + 1)), 413, stored)


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json}",
        b'{"email": "a@example.com", "eventName": "emailSe',
        b'{"email": "\xff\xfe"}',
        b"[1, 2, 3]",
        b'"a string"',
        b"42",
        b"null",
        b"",
        b"   ",
        b'{"email": "a\\u0000b"}',
        b'{"a\\u0000": 1}',
        b'{"nested": {"list": ["ok", "bad\\u0000"]}}',
        b'{"email": "\\ud800"}',
        b'{"n": NaN}',
        b'{"n": Infinity}',
        b'{"n": 1e400}',
        b'{"n": ' + b"9" * 5000 + b"}",
        b"\xef\xbb\xbf{}",
        b'{"a": 1} trailing',
    ],
    ids=[
        "invalid",
        "truncated",
        "invalid-utf8",
        "array",
        "string",
        "number",
        "null",
        "empty",
        "blank",
        "nul-value",
        "nul-key",
        "nul-nested",
        "lone-surrogate",
        "nan",
        "infinity",
        "overflow-float",
        "huge-int",
        "bom",
        "trailing-data",
    ],
)
def test_malformed_json_is_400(client: TestClient, stored: Any, raw: bytes) -> None:
    assert_refused(post_json(client, raw), 400, stored)


@pytest.mark.parametrize("levels", [65, 1_000, 100_000])
def test_deep_nesting_is_400_on_a_large_limit(
    conn_env: str, sqlite_url: str, stored: Any, levels: int
) -> None:
    app = create_app(queue_url=sqlite_url, max_body_bytes=1_048_576)
    with TestClient(app, raise_server_exceptions=False) as client:
        for raw in (b"[" * levels + b"]" * levels, b'{"a":' * levels + b"1" + b"}" * levels):
            response = post_json(client, b'{"x":' + raw + b"}")
            assert_refused(response, 400, stored)
            assert "nested" in response.json()["detail"]


def test_nesting_at_the_limit_is_accepted(client: TestClient, stored: Any) -> None:
    raw = b'{"x":' + b"[" * 63 + b"]" * 63 + b"}"
    assert post_json(client, raw).status_code == 200
    assert len(stored()) == 1


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"a=%ff", "application/x-www-form-urlencoded"),
        (b"a=b%00c", "application/x-www-form-urlencoded"),
        (b"", "application/x-www-form-urlencoded"),
        (b"\xff=1", "application/x-www-form-urlencoded"),
    ],
    ids=["bad-percent-utf8", "nul", "empty", "raw-invalid-utf8"],
)
def test_malformed_form_is_400(client: TestClient, stored: Any, raw: bytes, content_type: str) -> None:
    response = client.post(
        f"{JOURNEYS}/1", content=raw, headers={"Content-Type": content_type, **auth_headers()}
    )
    assert_refused(response, 400, stored)


def test_malformed_query_string_is_400(client: TestClient, stored: Any) -> None:
    assert_refused(post_json(client, system_body(1), path=SYSTEM + "?a=%00"), 400, stored)
    assert_refused(post_json(client, system_body(1), path=SYSTEM + "?a=%ff"), 400, stored)


def test_invalid_content_length_is_refused(client: TestClient, stored: Any) -> None:
    # httpx would correct a wrong header; the raw-socket tests cover lying lengths on a server.
    response = post_json(client, system_body(1), headers={"Content-Length": "abc"})
    assert response.status_code in (400, 413)
    assert stored() == []


def test_unicode_payload_round_trips(client: TestClient, stored: Any) -> None:
    body = {"email": "zoë@example.com", "dataFields": {"name": "Łukasz 🚀", "emptyList": []}}
    assert post_json(client, body).status_code == 200
    assert stored()[0].payload == body


# -- health -----------------------------------------------------------------------------------


def test_health_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


# -- factory arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"max_body_bytes": "1"}, "max_body_bytes"),
        ({"dedupe_window_seconds": -1}, "dedupe_window_seconds"),
        ({"unknown_conn_cache_seconds": -5}, "unknown_conn_cache_seconds"),
        ({"busy_timeout": 0}, "busy_timeout"),
        ({"max_batch": 0}, "max_batch"),
        ({"writer": "fork"}, "writer"),
        ({"connection_lookup": "nope"}, "connection_lookup"),
    ],
)
def test_bad_factory_arguments_name_the_parameter(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        create_app(**kwargs)


def test_unknown_factory_argument_names_it_and_the_known_ones() -> None:
    with pytest.raises(IterableConfigError, match="max_body_byte; known: queue_url, max_body_bytes"):
        create_app(max_body_byte=5)


def test_settings_object_with_overrides(sqlite_url: str) -> None:
    base = ReceiverSettings(queue_url=sqlite_url, max_body_bytes=100, writer="thread")
    app = create_app(base, max_body_bytes=200)
    assert app.state.receiver.settings == ReceiverSettings(
        queue_url=sqlite_url, max_body_bytes=200, writer="thread"
    )
    assert base.max_body_bytes == 100


def test_create_app_without_arguments_does_no_io(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    queue_file = tmp_path / "never.db"
    monkeypatch.setenv("AIRFLOW__ITERABLE__QUEUE_URL", f"sqlite:///{queue_file}")
    app = create_app()
    assert app.state.receiver.writer is None
    assert not queue_file.exists()
