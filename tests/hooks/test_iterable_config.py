"""The connection: key, region, host, timeout and extras; bad ones fail before any request."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from requests.adapters import HTTPAdapter

from airflow_provider_iterable.exceptions import (
    IterableAuthError,
    IterableConfigError,
    IterableConnectionError,
)
from airflow_provider_iterable.hooks.iterable import IterableHook
from airflow_provider_iterable.testing import DEFAULT_API_KEY, IterableSimulator

from .conftest import HookFactory, HookLogs, new_conn_id, set_connection


def hook_for(monkeypatch: pytest.MonkeyPatch, **connection: Any) -> IterableHook:
    conn_id = new_conn_id()
    set_connection(monkeypatch, conn_id, {"conn_type": "iterable", **connection})
    return IterableHook(conn_id)


def test_constructor_does_no_io(monkeypatch: pytest.MonkeyPatch):
    # No connection is defined at all: building the hook must still work (DAG parse time).
    hook = IterableHook("iterable_not_defined_anywhere", timeout=5, retry_deadline=30)
    assert hook.iterable_conn_id == "iterable_not_defined_anywhere"
    assert (IterableHook.conn_type, IterableHook.default_conn_name) == ("iterable", "iterable_default")
    assert IterableHook.conn_name_attr == "iterable_conn_id"


@pytest.mark.parametrize("password", [None, "", "   "])
def test_missing_api_key_fails_before_any_request(
    sim: IterableSimulator, monkeypatch: pytest.MonkeyPatch, password: str | None
):
    hook = hook_for(monkeypatch, host=sim.url, password=password)
    with pytest.raises(
        IterableConfigError, match="has no API key: put the Iterable API key in the connection's password"
    ):
        hook.get_lists()
    ok, message = hook.test_connection()
    assert not ok
    assert "no API key" in message
    assert sim.requests == []


def test_unknown_region_names_the_allowed_values(monkeypatch: pytest.MonkeyPatch):
    hook = hook_for(monkeypatch, password=DEFAULT_API_KEY, extra={"region": "apac"})
    with pytest.raises(
        IterableConfigError, match=r"unknown region 'apac' in extra 'region'; allowed values: us, eu"
    ):
        hook.get_channels()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, "https://api.iterable.com"),
        ({"region": "us"}, "https://api.iterable.com"),
        ({"region": " EU "}, "https://api.eu.iterable.com"),
        (json.dumps({"region": "eu"}), "https://api.eu.iterable.com"),
    ],
)
def test_region_picks_the_data_center(monkeypatch: pytest.MonkeyPatch, extra: Any, expected: str):
    assert hook_for(monkeypatch, password=DEFAULT_API_KEY, extra=extra).base_url == expected


def test_host_overrides_region(sim: IterableSimulator, monkeypatch: pytest.MonkeyPatch):
    hook = hook_for(monkeypatch, host=sim.url + "/", password=DEFAULT_API_KEY, extra={"region": "eu"})
    assert hook.base_url == sim.url
    hook.get_channels()
    assert len(sim.requests) == 1


def test_host_without_scheme_fails_before_any_request(monkeypatch: pytest.MonkeyPatch):
    hook = hook_for(monkeypatch, host="api.iterable.com", password=DEFAULT_API_KEY)
    with pytest.raises(
        IterableConfigError, match=r"host 'api.iterable.com' needs a scheme, e.g. https://api.iterable.com"
    ):
        hook.get_lists()


def test_key_that_does_not_look_like_iterable_s_warns_but_works(
    monkeypatch: pytest.MonkeyPatch, hook_logs: HookLogs
):
    odd_key = "Not-A-Hex-Key-But-Accepted-Here"
    with IterableSimulator(api_key=odd_key) as sim:
        hook = hook_for(monkeypatch, host=sim.url, password=odd_key)
        assert hook.get_channels()
        assert sim.requests[0].headers["api-key"] == odd_key
    warnings = hook_logs.messages("warning")
    assert any("does not look like an Iterable key" in message for message in warnings)
    assert odd_key not in hook_logs.text


def test_extras_as_json_strings(sim: IterableSimulator, monkeypatch: pytest.MonkeyPatch):
    # A UI form may store a nested object as a JSON string, and the whole extra may be a string.
    extra = json.dumps({"timeout": "7.5", "rate_limits": json.dumps({"get /api/channels": "none"})})
    hook = hook_for(monkeypatch, host=sim.url, password=DEFAULT_API_KEY, extra=extra)
    hook.get_channels()
    assert hook.limiter.rate_for("GET /api/channels") is None
    settings = hook._get_settings()
    assert (settings.connect_timeout, settings.read_timeout) == (7.5, 7.5)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ('{"region": "eu",}', "the extra field is not valid JSON"),
        ({"timeout": "soon"}, "extra 'timeout' must be a positive, finite number of seconds, got 'soon'"),
        ({"timeout": -1}, "extra 'timeout' must be a positive"),
        ({"rate_limits": ["POST /api/users/update"]}, "extra 'rate_limits' must be an object"),
        ({"rate_limits": "{not json"}, "extra 'rate_limits' is not valid JSON"),
        ({"rate_limits": {"users/update": 5}}, 'is not of the form "METHOD /api/path-template"'),
        ({"rate_limits": {"POST /api/users/update": "fast"}}, "must be a number of requests per second"),
    ],
)
def test_bad_extras_fail_before_any_request(
    sim: IterableSimulator, monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any] | str, match: str
):
    hook = hook_for(monkeypatch, host=sim.url, password=DEFAULT_API_KEY, extra=extra)
    with pytest.raises(IterableConfigError, match=match):
        hook.get_channels()
    assert sim.requests == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout": 0}, "timeout must be a positive"),
        ({"retry_deadline": float("inf")}, "retry_deadline must be a positive, finite"),
        ({"max_attempts": 0}, "max_attempts must be a whole number >= 1"),
    ],
)
def test_bad_hook_arguments(kwargs: dict[str, Any], match: str):
    with pytest.raises(IterableConfigError, match=match):
        IterableHook("iterable_default", **kwargs)


class RecordingAdapter(HTTPAdapter):
    """A requests transport adapter that notes the timeout of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[Any] = []

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        self.timeouts.append(kwargs.get("timeout"))
        return super().send(request, **kwargs)


def test_the_timeout_reaches_every_request(sim: IterableSimulator, make_hook: HookFactory):
    sim.add_user(email="a@example.com")
    sim.add_user(user_id="u-1")
    list_id = sim.add_list("L")
    hook = make_hook(timeout=12)
    adapter = RecordingAdapter()
    hook.session.mount("http://", adapter)
    hook.upsert_user(email="a@example.com")
    hook.bulk_update_users([{"email": "a@example.com"}])
    hook.get_user_by_email("a@example.com")
    hook.get_user_by_id("u-1")
    hook.update_subscriptions(email="a@example.com", email_list_ids=[list_id])
    hook.create_list("M")
    hook.get_lists()
    hook.subscribe_to_list(list_id, [{"email": "a@example.com"}])
    hook.unsubscribe_from_list(list_id, [{"email": "a@example.com"}])
    hook.track_event(event_name="e", email="a@example.com")
    hook.track_events([{"eventName": "e", "email": "a@example.com"}])
    hook.send_sms(campaign_id=2001, recipient_email="a@example.com")
    hook.send_email(campaign_id=1001, recipient_email="a@example.com")
    hook.get_channels()
    hook.trigger_workflow(workflow_id=3001, email="a@example.com")
    hook.test_connection()
    hook.delete_user(email="a@example.com")
    hook.delete_user(user_id="u-1")
    assert len(adapter.timeouts) == len(sim.requests) == 18
    assert set(adapter.timeouts) == {(10.0, 12.0)}  # connect capped at 10 s, read from the extra


def test_the_hook_timeout_overrides_the_extra_and_is_enforced(sim: IterableSimulator, make_hook: HookFactory):
    sim.add_fault("GET /api/channels", delay=2.0, times=10)
    hook = make_hook(timeout=60, hook_kwargs={"timeout": 0.25, "retry_deadline": 1.0})
    started = time.monotonic()
    with pytest.raises(IterableConnectionError, match=r"no answer within the read timeout of 0\.25 s"):
        hook.get_channels()
    # The retry deadline (1 s) ended it: ten attempts with their backoff would take over 5 s.
    assert time.monotonic() - started < 4.0


def test_default_timeout_is_thirty_seconds(sim: IterableSimulator, make_hook: HookFactory):
    settings = make_hook()._get_settings()
    assert (settings.connect_timeout, settings.read_timeout) == (10.0, 30.0)


class ForwardingAdapter(HTTPAdapter):
    """A requests transport adapter that sends what is addressed to ``origin`` to ``target`` instead.

    Mounted for Iterable's own URL, it lets a hook whose base URL comes from the region reach
    the simulator, so the answers it gets are those of a real request.
    """

    def __init__(self, origin: str, target: str) -> None:
        super().__init__()
        self.origin = origin
        self.target = target

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        request.url = self.target + request.url[len(self.origin) :]
        return super().send(request, **kwargs)


def forward_to(hook: IterableHook, sim: IterableSimulator) -> None:
    hook.session.mount(hook.base_url, ForwardingAdapter(hook.base_url, sim.url))


def test_test_connection_bad_key_against_a_region_mentions_the_data_center(
    sim: IterableSimulator, monkeypatch: pytest.MonkeyPatch
):
    hook = hook_for(monkeypatch, password="0" * 32, extra={"region": "eu"})
    forward_to(hook, sim)
    ok, message = hook.test_connection()
    assert not ok
    assert len(sim.requests) == 1
    assert "Iterable at https://api.eu.iterable.com rejected the API key (HTTP 401 BadApiKey)" in message
    assert "data center" in message
    assert "region (us or eu)" in message
    with pytest.raises(IterableAuthError) as caught:
        hook.get_lists()
    assert "check the connection's region (us or eu)" in str(caught.value)


def test_test_connection_bad_key_at_a_data_center_host_mentions_the_host(
    sim: IterableSimulator, monkeypatch: pytest.MonkeyPatch
):
    hook = hook_for(monkeypatch, host="https://api.eu.iterable.com", password="0" * 32)
    forward_to(hook, sim)
    ok, message = hook.test_connection()
    assert not ok
    assert "rejected the API key (HTTP 401 BadApiKey)" in message
    assert "the connection's Host points at the EU data center" in message


def test_test_connection_bad_key_at_another_host_names_the_host_not_the_data_center(
    sim: IterableSimulator, monkeypatch: pytest.MonkeyPatch
):
    hook = hook_for(monkeypatch, host=sim.url, password="0" * 32)
    ok, message = hook.test_connection()
    assert not ok
    assert (
        f"The API at {sim.url} (the connection's Host) rejected the API key (HTTP 401 BadApiKey)" in message
    )
    assert "data center" not in message
    assert "region" not in message


def test_test_connection_unreachable_host(closed_port: int, monkeypatch: pytest.MonkeyPatch):
    hook = hook_for(monkeypatch, host=f"http://127.0.0.1:{closed_port}", password=DEFAULT_API_KEY)
    hook.max_attempts = 2
    ok, message = hook.test_connection()
    assert not ok
    assert message.startswith(
        f"Could not reach Iterable at http://127.0.0.1:{closed_port}: connection refused"
    )


def test_test_connection_unknown_region(monkeypatch: pytest.MonkeyPatch):
    ok, message = hook_for(monkeypatch, password=DEFAULT_API_KEY, extra={"region": "mars"}).test_connection()
    assert not ok
    assert "allowed values: us, eu" in message


def test_test_connection_undefined_connection():
    ok, message = IterableHook("iterable_never_defined_here").test_connection()
    assert (ok, message) == (False, "Connection 'iterable_never_defined_here' is not defined")
