"""Client-side pacing: even spacing at the endpoint's rate, shared per connection, thread-safe."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_iterable.exceptions import IterableConfigError, IterableError, IterableRateLimitError
from airflow_provider_iterable.hooks import _base
from airflow_provider_iterable.hooks._rate_limit import (
    DEFAULT_RATE_LIMITS,
    UNDOCUMENTED_RATE_LIMIT,
    EndpointRateLimiter,
    rate_limit_keys,
)
from airflow_provider_iterable.hooks._retry import _IDEMPOTENT_POSTS
from airflow_provider_iterable.hooks.iterable import IterableHook
from airflow_provider_iterable.testing import IterableSimulator

from .conftest import HookFactory, new_conn_id

RATE = 20.0
ENDPOINT = "GET /api/lists"


@pytest.fixture
def paced_sim(sim: IterableSimulator) -> IterableSimulator:
    """The simulator enforcing RATE on ENDPOINT: a client going faster gets 429s."""
    sim.set_rate_limit(ENDPOINT, RATE)
    return sim


def test_n_calls_take_at_least_n_minus_one_intervals_without_429(
    paced_sim: IterableSimulator, make_hook: HookFactory
):
    hook = make_hook(rate_limits={ENDPOINT: RATE})
    calls = 21
    started = time.monotonic()
    for _ in range(calls):
        hook.get_lists()
    elapsed = time.monotonic() - started
    assert elapsed >= (calls - 1) / RATE
    assert elapsed < (calls - 1) / RATE + 1.0  # paced, not throttled far below the rate
    assert len(paced_sim.requests_for(ENDPOINT)) == calls
    assert paced_sim.rate_limited_count() == 0


def test_without_pacing_the_same_calls_hit_429(paced_sim: IterableSimulator, make_hook: HookFactory):
    """The control for the test above: the simulator does punish a client that does not pace."""
    hook = make_hook(rate_limits={ENDPOINT: None}, hook_kwargs={"max_attempts": 1})
    refused = 0
    for _ in range(100):
        try:
            hook.get_lists()
        except IterableRateLimitError:
            refused += 1
    assert refused > 0
    assert paced_sim.rate_limited_count(ENDPOINT) == refused


def test_two_hooks_of_one_connection_share_the_limiter(paced_sim: IterableSimulator, make_hook: HookFactory):
    conn_id = new_conn_id()
    first = make_hook(conn_id=conn_id, rate_limits={ENDPOINT: RATE})
    second = make_hook(conn_id=conn_id, rate_limits={ENDPOINT: RATE})
    assert first.limiter is second.limiter
    assert make_hook(rate_limits={ENDPOINT: RATE}).limiter is not first.limiter
    started = time.monotonic()
    for _ in range(10):
        first.get_lists()
        second.get_lists()
    assert time.monotonic() - started >= 19 / RATE
    assert paced_sim.rate_limited_count() == 0


@pytest.mark.parametrize("shared_hook", [True, False], ids=["one hook", "hook per thread"])
def test_threads_are_paced_together(paced_sim: IterableSimulator, make_hook: HookFactory, shared_hook: bool):
    conn_id = new_conn_id()
    hooks = [make_hook(conn_id=conn_id, rate_limits={ENDPOINT: RATE}) for _ in range(1 if shared_hook else 4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(hook: IterableHook) -> None:
        barrier.wait()
        try:
            for _ in range(6):
                hook.get_lists()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(hooks[i % len(hooks)],)) for i in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    elapsed = time.monotonic() - started
    assert errors == []
    assert len(paced_sim.requests_for(ENDPOINT)) == 24
    assert elapsed >= 23 / RATE
    assert paced_sim.rate_limited_count() == 0


def test_rate_limit_keys_are_path_templates(sim: IterableSimulator, make_hook: HookFactory):
    """Deletes of different users share the bucket of ``DELETE /api/users/{email}``."""
    for n in range(6):
        sim.add_user(email=f"user{n}@example.com")
    hook = make_hook(rate_limits={"DELETE /api/users/{email}": 10})
    started = time.monotonic()
    for n in range(6):
        hook.delete_user(email=f"user{n}@example.com")
    assert time.monotonic() - started >= 5 / 10


@pytest.mark.parametrize("disabled", [None, 0, -1, "none"])
def test_non_positive_or_null_rate_disables_pacing(make_hook: HookFactory, sim: IterableSimulator, disabled):
    sim.enforce_rate_limits = False
    hook = make_hook(rate_limits={"POST /api/users/bulkUpdate": disabled})
    assert hook.limiter.rate_for("POST /api/users/bulkUpdate") is None
    started = time.monotonic()
    for _ in range(11):
        hook.bulk_update_users([{"email": "a@example.com"}])
    # Paced at Iterable's documented 5/s these eleven calls would take two seconds.
    assert time.monotonic() - started < 1.5


def test_documented_limits_are_the_defaults(sim: IterableSimulator, make_hook: HookFactory):
    limiter = make_hook().limiter
    assert limiter.rate_for("POST /api/users/bulkUpdate") == 5
    assert limiter.rate_for("POST /api/events/trackBulk") == 10
    assert limiter.rate_for("POST /api/events/track") == 2000
    assert limiter.rate_for("POST /api/users/update") == 500
    assert limiter.rate_for("GET /api/users/getByEmail") == 100
    assert limiter.rate_for("DELETE /api/users/byUserId/{userId}") == 100
    assert limiter.rate_for("GET /api/export/data.json") == pytest.approx(4 / 60)
    # Undocumented endpoints are paced conservatively.
    for endpoint in (
        "POST /api/sms/target",
        "POST /api/lists/subscribe",
        "POST /api/workflows/triggerWorkflow",
    ):
        assert endpoint not in DEFAULT_RATE_LIMITS
        assert limiter.rate_for(endpoint) == UNDOCUMENTED_RATE_LIMIT == 10


def test_override_replaces_one_endpoint_only(sim: IterableSimulator, make_hook: HookFactory):
    limiter = make_hook(rate_limits={"POST /api/sms/target": 2.5}).limiter
    assert limiter.rate_for("POST /api/sms/target") == 2.5
    assert limiter.rate_for("POST /api/users/bulkUpdate") == 5


def test_bucket_arithmetic_is_even_spacing_with_burst_one():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = EndpointRateLimiter({"POST /x": 4.0}, clock=lambda: now[0], sleep=sleep)
    waits = [limiter.acquire("POST /x") for _ in range(4)]
    assert waits == [0.0, 0.25, 0.25, 0.25]
    # Idle time earns at most one token: after a long pause, one call is free, the next waits.
    now[0] += 10
    assert limiter.acquire("POST /x") == 0.0
    assert limiter.acquire("POST /x") == 0.25
    assert slept == [0.25, 0.25, 0.25, 0.25]


# -- which keys the rate_limits extra accepts -----------------------------------------------------


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("POST /api/user/bulkUpdate", "POST /api/users/bulkUpdate"),
        # Iterable's paths are case-sensitive: a path in the wrong case is another (unknown) URL.
        ("POST /api/users/bulkupdate", "POST /api/users/bulkUpdate"),
        ("GET /api/users/{userEmail}", "GET /api/users/{email}"),
    ],
)
def test_misspelt_key_is_refused_naming_the_known_ones(
    sim: IterableSimulator, make_hook: HookFactory, key: str, suggestion: str
):
    hook = make_hook(rate_limits={key: 2})
    with pytest.raises(IterableConfigError) as caught:
        hook.bulk_update_users([{"email": "a@example.com"}])
    message = str(caught.value)
    assert f"key {key!r} names no endpoint the hook calls" in message
    assert f"did you mean {suggestion!r}?" in message
    for known in (*IterableHook.endpoint_keys, *DEFAULT_RATE_LIMITS):
        assert known in message
    assert sim.requests == []


def test_lower_case_method_takes_effect(sim: IterableSimulator, make_hook: HookFactory):
    """``post`` can only mean ``POST``: the key paces the endpoint instead of being ignored."""
    hook = make_hook(rate_limits={"post /api/users/bulkUpdate": 2})
    assert hook.limiter.rate_for("POST /api/users/bulkUpdate") == 2
    started = time.monotonic()
    for _ in range(3):
        hook.bulk_update_users([{"email": "a@example.com"}])
    # At 2/s three calls take at least a second; at the default 5/s they would take 0.4 s.
    assert time.monotonic() - started >= 1.0


def test_every_endpoint_the_hook_calls_is_a_known_key(sim: IterableSimulator, make_hook: HookFactory):
    keys = {*IterableHook.endpoint_keys, *DEFAULT_RATE_LIMITS}
    limiter = make_hook(rate_limits=dict.fromkeys(keys, 7)).limiter
    assert {key: limiter.rate_for(key) for key in keys} == dict.fromkeys(keys, 7)
    # What the retry rules call safe to repeat are endpoints the hook really calls.
    assert _IDEMPOTENT_POSTS.issubset(IterableHook.endpoint_keys)


class HookWithTemplates(IterableHook):
    """An area added the documented way: the method declares its endpoint and calls it."""

    @_base.endpoint("GET /api/templates")
    def get_templates(self) -> Any:
        return self._call("GET /api/templates")

    def get_campaigns_undeclared(self) -> Any:
        return self._call("GET /api/campaigns")


def test_a_declared_endpoint_becomes_a_known_key(sim: IterableSimulator, monkeypatch: pytest.MonkeyPatch):
    conn_id = new_conn_id()
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", sim.connection_json(rate_limits={"GET /api/templates": 3})
    )
    hook = HookWithTemplates(conn_id)
    assert "GET /api/templates" in HookWithTemplates.endpoint_keys
    assert "GET /api/templates" not in IterableHook.endpoint_keys
    assert hook.limiter.rate_for("GET /api/templates") == 3
    with pytest.raises(IterableError, match="GET /api/campaigns is declared with @endpoint by no method"):
        hook.get_campaigns_undeclared()
    assert sim.requests == []


def test_the_documented_table_lists_every_known_key():
    table = (Path(__file__).parents[2] / "docs" / "rate-limits.md").read_text()
    missing = [key for key in sorted(rate_limit_keys(IterableHook.endpoint_keys)) if f"`{key}`" not in table]
    assert missing == []


@pytest.mark.parametrize("rate", [0, -1.0, float("nan"), "5", True])
def test_a_limiter_refuses_a_rate_that_is_not_positive(rate: Any):
    with pytest.raises(IterableConfigError, match="must be a positive number of requests per second"):
        EndpointRateLimiter({"POST /x": rate})
    with pytest.raises(IterableConfigError, match="default_rate must be a positive number"):
        EndpointRateLimiter(default_rate=rate)
