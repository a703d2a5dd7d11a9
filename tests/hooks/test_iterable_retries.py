"""Retries: 429 and Retry-After (R12), and what may be repeated after which failure (R13)."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from airflow_provider_iterable.exceptions import (
    IterableApiError,
    IterableAuthError,
    IterableConnectionError,
    IterableNotFoundError,
    IterableOutcomeUnknownError,
    IterableRateLimitError,
)
from airflow_provider_iterable.hooks._retry import backoff_seconds, parse_retry_after
from airflow_provider_iterable.hooks.iterable import IterableHook
from airflow_provider_iterable.testing import DEFAULT_API_KEY, IterableSimulator

from .conftest import HookFactory, HookLogs, new_conn_id, set_connection
from .endpoint_cases import CASES, EndpointCase

# Scheduling on a shared machine: allow this much beyond a computed wait.
SLACK = 0.75


def gaps(sim: IterableSimulator, endpoint: str) -> list[float]:
    times = [request.received_at for request in sim.requests_for(endpoint)]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def retry_warnings(logs: HookLogs) -> list[str]:
    return [message for message in logs.messages("warning") if " attempt " in message]


# ------------------------------------------------------------------------------------ R12: 429


def test_retry_after_seconds_is_honoured(sim: IterableSimulator, make_hook: HookFactory):
    sim.add_fault("POST /api/users/update", status=429, headers={"Retry-After": "2"})
    started = time.monotonic()
    answer = make_hook().upsert_user(email="a@example.com")
    elapsed = time.monotonic() - started
    assert answer["code"] == "Success"
    assert len(sim.requests_for("POST /api/users/update")) == 2
    assert gaps(sim, "POST /api/users/update")[0] >= 2.0
    assert elapsed < 2.0 + 1.5


def test_retry_after_http_date_is_honoured(sim: IterableSimulator, make_hook: HookFactory):
    # An HTTP-date has whole seconds: three seconds ahead is a wait of more than two.
    when = datetime.now(timezone.utc) + timedelta(seconds=3)
    sim.add_fault(
        "GET /api/channels", status=429, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    make_hook().get_channels()
    assert len(sim.requests_for("GET /api/channels")) == 2
    gap = gaps(sim, "GET /api/channels")[0]
    assert 1.9 <= gap <= 3.0 + SLACK


def test_429_without_retry_after_backs_off_exponentially(
    sim: IterableSimulator, make_hook: HookFactory, hook_logs: HookLogs
):
    # Iterable sometimes answers 429 with plain text and no header.
    sim.add_fault("POST /api/lists/subscribe", status=429, body="Too Many Requests", times=3)
    list_id = sim.add_list("L")
    answer = make_hook().subscribe_to_list(list_id, [{"email": "a@example.com"}])
    assert answer["successCount"] == 1
    assert len(sim.requests_for("POST /api/lists/subscribe")) == 4
    first, second, third = gaps(sim, "POST /api/lists/subscribe")
    # Steps of 0.5, 1 and 2 s, each half fixed and half random.
    assert 0.25 <= first <= 0.5 + SLACK
    assert 0.5 <= second <= 1.0 + SLACK
    assert 1.0 <= third <= 2.0 + SLACK
    lines = retry_warnings(hook_logs)
    assert len(lines) == 3
    assert all(
        "POST /api/lists/subscribe" in line and "HTTP 429" in line and "retrying in" in line for line in lines
    )


def test_backoff_is_jittered_and_capped():
    draws = [backoff_seconds(3) for _ in range(300)]
    assert all(1.0 <= draw <= 2.0 for draw in draws)
    assert len({round(draw, 6) for draw in draws}) > 250  # random, not one fixed value
    assert max(backoff_seconds(40) for _ in range(50)) <= 30.0


def test_429_forever_gives_up_at_the_deadline(sim: IterableSimulator, make_hook: HookFactory):
    sim.add_fault("GET /api/lists", status=429, times=1000)
    hook = make_hook(hook_kwargs={"retry_deadline": 2.0})
    started = time.monotonic()
    with pytest.raises(IterableRateLimitError, match="still rate limited") as caught:
        hook.get_lists()
    elapsed = time.monotonic() - started
    # Within the deadline plus one attempt; without a deadline ten attempts' backoff is over 60 s.
    assert elapsed < 2.0 + 2.0
    assert len(sim.requests_for("GET /api/lists")) >= 3
    assert caught.value.status == 429
    assert "rate_limits" in str(caught.value)


def test_retry_after_past_the_deadline_fails_fast(sim: IterableSimulator, make_hook: HookFactory):
    sim.add_fault("POST /api/events/trackBulk", status=429, headers={"Retry-After": "3600"})
    started = time.monotonic()
    with pytest.raises(IterableRateLimitError) as caught:
        make_hook().track_events([{"eventName": "e", "email": "a@example.com", "id": "1"}])
    assert time.monotonic() - started < 10.0  # not the hour it was asked to wait
    assert len(sim.requests_for("POST /api/events/trackBulk")) == 1
    message = str(caught.value)
    assert "POST /api/events/trackBulk" in message
    assert "3600 s (Retry-After)" in message
    assert "retry deadline (120 s)" in message
    assert caught.value.retry_after == 3600


def test_429_is_retried_even_where_a_repeat_is_unsafe(sim: IterableSimulator, make_hook: HookFactory):
    # A 429 was not processed, so retrying it cannot send twice.
    sim.add_user(email="a@example.com")
    sim.add_fault("POST /api/sms/target", status=429, headers={"Retry-After": "0"})
    make_hook().send_sms(campaign_id=2001, recipient_email="a@example.com")
    assert len(sim.requests_for("POST /api/sms/target")) == 2
    assert len(sim.sends) == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2", 2.0),
        (" 1.5 ", 1.5),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header, expected):
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date_in_the_future():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:07 GMT", now=now) == 7.0


# ------------------------------------------------------------------- R13: what is repeated


def _prepare(case: EndpointCase, sim: IterableSimulator) -> object:
    context = case.prepare(sim)
    sim.clear_requests()
    return context


@pytest.mark.parametrize("case", CASES, ids=str)
def test_500_is_retried_only_where_safe(sim: IterableSimulator, make_hook: HookFactory, case: EndpointCase):
    context = _prepare(case, sim)
    sim.add_fault(case.endpoint, status=500)
    hook = make_hook()
    if case.safe:
        case.call(hook, context)
        assert len(sim.requests_for(case.endpoint)) == 2
    else:
        with pytest.raises(IterableOutcomeUnknownError) as caught:
            case.call(hook, context)
        assert len(sim.requests_for(case.endpoint)) == 1
        assert caught.value.endpoint == case.endpoint
        assert caught.value.status == 500
        assert case.endpoint in str(caught.value)
        assert "may have been delivered" in str(caught.value)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_read_timeout_after_the_body_arrived(
    sim: IterableSimulator, make_hook: HookFactory, case: EndpointCase
):
    context = _prepare(case, sim)
    # The simulator reads and records the request, then answers after the client gave up.
    sim.add_fault(case.endpoint, delay=1.0)
    hook = make_hook(hook_kwargs={"timeout": 0.3})
    if case.safe:
        case.call(hook, context)
        assert len(sim.requests_for(case.endpoint)) == 2
    else:
        with pytest.raises(IterableOutcomeUnknownError, match=r"read timeout of 0\.3 s") as caught:
            case.call(hook, context)
        assert len(sim.requests_for(case.endpoint)) == 1
        assert caught.value.status is None
        assert "may have been delivered" in str(caught.value)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_dropped_connection_after_send(sim: IterableSimulator, make_hook: HookFactory, case: EndpointCase):
    context = _prepare(case, sim)
    sim.add_fault(case.endpoint, drop=True)
    hook = make_hook()
    if case.safe:
        case.call(hook, context)
        assert len(sim.requests_for(case.endpoint)) == 2
    else:
        with pytest.raises(IterableOutcomeUnknownError, match="connection dropped"):
            case.call(hook, context)
        assert len(sim.requests_for(case.endpoint)) == 1


@pytest.mark.parametrize(
    ("answer", "readable_error", "reason"),
    [
        # 200 with an HTML page: accepted, but what was done cannot be read.
        ({"body": "<html>OK</html>"}, IterableApiError, "a body that is not JSON"),
        # 200 whose body does not decode (gzip announced, plain text sent).
        (
            {"body": "plain", "headers": {"Content-Encoding": "gzip"}},
            IterableConnectionError,
            "could not be read",
        ),
    ],
    ids=["not-json", "undecodable"],
)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_accepted_call_with_an_unreadable_answer_is_never_repeated(
    sim: IterableSimulator, make_hook: HookFactory, case: EndpointCase, answer, readable_error, reason
):
    context = _prepare(case, sim)
    sim.add_fault(case.endpoint, status=200, **answer)
    if case.safe:
        with pytest.raises(readable_error):
            case.call(make_hook(), context)
    else:
        # The call reached Iterable and was accepted: an error that let a task retry send it
        # again would send or create twice.
        with pytest.raises(IterableOutcomeUnknownError, match=reason) as caught:
            case.call(make_hook(), context)
        assert "may have been delivered" in str(caught.value)
    assert len(sim.requests_for(case.endpoint)) == 1


def test_create_list_answer_without_a_list_id_is_an_unknown_outcome(
    sim: IterableSimulator, make_hook: HookFactory
):
    sim.add_fault("POST /api/lists", status=200, body={"msg": "", "code": "Success", "params": None})
    with pytest.raises(IterableOutcomeUnknownError, match="without a listId"):
        make_hook().create_list("VIPs")
    assert len(sim.requests_for("POST /api/lists")) == 1


@pytest.mark.parametrize("case", CASES, ids=str)
def test_400_is_never_retried(
    sim: IterableSimulator, make_hook: HookFactory, case: EndpointCase, hook_logs: HookLogs
):
    context = _prepare(case, sim)
    sim.add_fault(
        case.endpoint, status=400, body={"code": "BadParams", "msg": "Invalid parameters", "params": None}
    )
    with pytest.raises(IterableApiError) as caught:
        case.call(make_hook(), context)
    assert type(caught.value) is IterableApiError
    assert (caught.value.status, caught.value.code, caught.value.msg) == (
        400,
        "BadParams",
        "Invalid parameters",
    )
    assert caught.value.endpoint == case.endpoint
    assert len(sim.requests_for(case.endpoint)) == 1
    assert retry_warnings(hook_logs) == []


@pytest.mark.parametrize("case", CASES, ids=str)
def test_connection_refused_is_retried_everywhere(
    closed_port: int, monkeypatch: pytest.MonkeyPatch, hook_logs: HookLogs, case: EndpointCase
):
    conn_id = new_conn_id()
    set_connection(
        monkeypatch,
        conn_id,
        {"conn_type": "iterable", "host": f"http://127.0.0.1:{closed_port}", "password": DEFAULT_API_KEY},
    )
    hook = IterableHook(conn_id, max_attempts=2)
    with pytest.raises(IterableConnectionError, match="connection refused; gave up after 2 attempts"):
        case.call(hook, 1)
    first, last = retry_warnings(hook_logs)
    assert f"{case.endpoint} attempt 1 failed (connection refused); retrying in" in first
    assert f"{case.endpoint} attempt 2 failed (connection refused); giving up" in last


def test_connection_refused_then_the_server_comes_up(closed_port: int, monkeypatch: pytest.MonkeyPatch):
    """Connection refused is retried even for sms/target, and the SMS goes out exactly once."""
    late = IterableSimulator(port=closed_port)
    late.add_user(email="a@example.com")
    conn_id = new_conn_id()
    set_connection(
        monkeypatch,
        conn_id,
        {"conn_type": "iterable", "host": f"http://127.0.0.1:{closed_port}", "password": DEFAULT_API_KEY},
    )
    starter = threading.Timer(0.8, late.start)
    starter.start()
    try:
        started = time.monotonic()
        answer = IterableHook(conn_id, retry_deadline=10).send_sms(
            campaign_id=2001, recipient_email="a@example.com"
        )
        assert time.monotonic() - started >= 0.8
        assert answer["code"] == "Success"
        assert len(late.requests_for("POST /api/sms/target")) == 1
        assert len(late.sends) == 1
    finally:
        starter.join()
        late.stop()


def test_unsafe_read_timeout_really_may_have_been_delivered(sim: IterableSimulator, make_hook: HookFactory):
    """The error is honest: the simulator did send the SMS the client gave up on, and only once."""
    sim.add_user(email="a@example.com")
    sim.add_fault("POST /api/sms/target", delay=0.6)
    with pytest.raises(IterableOutcomeUnknownError):
        make_hook(hook_kwargs={"timeout": 0.2}).send_sms(campaign_id=2001, recipient_email="a@example.com")
    deadline = time.monotonic() + 3
    while not sim.sends and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    assert len(sim.sends) == 1


def test_5xx_retries_on_safe_endpoints_give_up_at_the_deadline(
    sim: IterableSimulator, make_hook: HookFactory
):
    sim.add_fault("POST /api/users/bulkUpdate", status=503, times=1000)
    with pytest.raises(IterableApiError, match="gave up after") as caught:
        make_hook(hook_kwargs={"retry_deadline": 1.5}).bulk_update_users([{"email": "a@example.com"}])
    assert caught.value.status == 503
    assert caught.value.msg == "Request timeout. Try again later."
    assert len(sim.requests_for("POST /api/users/bulkUpdate")) >= 2


def test_retry_warning_names_endpoint_status_and_wait(
    sim: IterableSimulator, make_hook: HookFactory, hook_logs: HookLogs
):
    sim.add_fault("POST /api/users/update", status=500)
    make_hook().upsert_user(email="a@example.com")
    (line,) = retry_warnings(hook_logs)
    assert line.startswith(
        "Iterable POST /api/users/update attempt 1 failed (HTTP 500 GenericError); retrying in "
    )
    assert "a@example.com" not in hook_logs.text


# ------------------------------------------------------------------ answers that are errors


def test_unknown_route_html_page_is_a_readable_not_found(sim: IterableSimulator, make_hook: HookFactory):
    with pytest.raises(IterableNotFoundError) as caught:
        make_hook().request("GET", "/api/no/such/action")
    assert caught.value.status == 404
    assert "Action not found" in str(caught.value)
    assert "<" not in str(caught.value)
    assert len(sim.requests) == 1


def test_wrong_key_is_an_auth_error_and_not_retried(sim: IterableSimulator, monkeypatch: pytest.MonkeyPatch):
    conn_id = new_conn_id()
    set_connection(monkeypatch, conn_id, {"conn_type": "iterable", "host": sim.url, "password": "f" * 32})
    with pytest.raises(IterableAuthError) as caught:
        IterableHook(conn_id).get_lists()
    assert caught.value.status == 401
    assert caught.value.code == "BadApiKey"
    # The Host is the simulator, not one of Iterable's data centers: the message names the host.
    assert f"The API at {sim.url} (the connection's Host) rejected the API key" in str(caught.value)
    assert "data center" not in str(caught.value)
    assert len(sim.requests) == 1


def test_threads_sharing_a_hook_retry_independently(
    sim: IterableSimulator, make_hook: HookFactory, hook_logs: HookLogs
):
    """One hook, one retry controller, four threads: each call keeps its own attempts and waits."""
    sim.add_fault("POST /api/users/update", status=500, times=4)
    hook = make_hook()
    barrier = threading.Barrier(4)
    answers: list[object] = []
    errors: list[BaseException] = []

    def upsert(n: int) -> None:
        barrier.wait()
        try:
            answers.append(hook.upsert_user(email=f"t{n}@example.com")["code"])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=upsert, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert answers == ["Success"] * 4
    assert len(sim.requests_for("POST /api/users/update")) == 8
    # Four faults, four retries, whichever thread's request met each of them.
    lines = retry_warnings(hook_logs)
    assert len(lines) == 4
    assert all("failed (HTTP 500 GenericError); retrying in" in line for line in lines)
    assert {sim.get_user(email=f"t{n}@example.com") is not None for n in range(4)} == {True}
