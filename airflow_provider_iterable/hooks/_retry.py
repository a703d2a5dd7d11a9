"""What to retry and how long to wait between attempts of one call to Iterable.

:func:`is_idempotent` says which calls may be repeated once they may have reached Iterable
(ITERABLE_API.md, "Safe to retry"). One predicate (:func:`is_retryable`) decides for every
endpoint; :class:`RetryController` holds a hook's retry rules: the wait before each next
attempt (``Retry-After`` first, otherwise exponential backoff with jitter, capped), the total
deadline, the log line of each failed attempt, and the error raised when giving up.

The hook classifies failures before they reach the predicate: a failure that may have been
delivered (read timeout, dropped connection, 5xx) on an endpoint that must not be repeated is
already an :class:`~airflow_provider_iterable.exceptions.IterableOutcomeUnknownError`, which is
never retried. So "retryable" here means: 429 anywhere, connect failures anywhere, and 5xx / no
answer where the hook let them through (safe endpoints).
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception

from airflow_provider_iterable.exceptions import (
    IterableApiError,
    IterableConnectionError,
    IterableRateLimitError,
)

__all__ = [
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_MAX_ATTEMPTS",
    "RetryController",
    "backoff_seconds",
    "is_idempotent",
    "is_retryable",
    "parse_retry_after",
]

#: First backoff step in seconds when the server gives no ``Retry-After``.
DEFAULT_BACKOFF_INITIAL = 0.5
#: Largest single backoff in seconds.
DEFAULT_BACKOFF_MAX = 30.0
#: Most attempts of one call, whatever the deadline.
DEFAULT_MAX_ATTEMPTS = 10

T = TypeVar("T")

_DELTA_SECONDS = re.compile(r"^\s*\d+(\.\d+)?\s*$")

# POSTs whose repetition leaves Iterable as one call would (ITERABLE_API.md "Safe to retry").
_IDEMPOTENT_POSTS = frozenset(
    {
        "POST /api/users/update",
        "POST /api/users/bulkUpdate",
        "POST /api/users/updateSubscriptions",
        "POST /api/lists/subscribe",
        "POST /api/lists/unsubscribe",
    }
)
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "DELETE"})


def is_idempotent(endpoint: str, body: Any) -> bool:
    """Return whether repeating a call that may have arrived leaves Iterable as one call would.

    :param endpoint: the endpoint key, ``"METHOD /api/path-template"``.
    :param body: the JSON body: ``events/track`` and ``events/trackBulk`` are safe only when every
        event carries an ``id`` (the same id updates instead of duplicating).
    """
    method = endpoint.split(" ", 1)[0]
    if method in _IDEMPOTENT_METHODS or endpoint in _IDEMPOTENT_POSTS:
        return True
    if endpoint == "POST /api/events/track":
        return isinstance(body, Mapping) and _has_event_id(body)
    if endpoint == "POST /api/events/trackBulk":
        events = body.get("events") if isinstance(body, Mapping) else None
        if not isinstance(events, Sequence) or not events:
            return False
        return all(isinstance(event, Mapping) and _has_event_id(event) for event in events)
    return False


def _has_event_id(event: Mapping[str, Any]) -> bool:
    value = event.get("id")
    return value is not None and str(value) != ""


def is_retryable(exc: BaseException) -> bool:
    """Return whether a failed attempt may be repeated.

    :param exc: the exception raised by the attempt.
    """
    if isinstance(exc, IterableRateLimitError):
        return True  # a 429 was not processed: safe for every endpoint
    if isinstance(exc, IterableApiError):
        return exc.status >= 500
    if isinstance(exc, IterableConnectionError):
        return exc.retryable
    return False


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait, ``None`` if absent or unreadable.

    :param value: the header: delta-seconds (``"2"``) or an HTTP-date
        (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
    :param now: the current time (UTC) an HTTP-date is measured from; defaults to the clock.
    """
    if value is None or not value.strip():
        return None
    if _DELTA_SECONDS.match(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    reference = now or datetime.now(timezone.utc)
    return max(0.0, (when - reference).total_seconds())


def backoff_seconds(
    attempt: int,
    *,
    initial: float = DEFAULT_BACKOFF_INITIAL,
    maximum: float = DEFAULT_BACKOFF_MAX,
    rng: Callable[[], float] = random.random,
) -> float:
    """Return the wait after failed attempt number ``attempt`` when the server named none.

    Exponential with "equal jitter": half of the step is fixed, half random, so parallel clients
    spread out while each still backs off.

    :param attempt: the 1-based number of the attempt that just failed.
    :param initial: the first step in seconds.
    :param maximum: the cap of a step in seconds.
    :param rng: a source of floats in [0, 1).
    """
    step = min(maximum, initial * math.pow(2.0, attempt - 1))
    return step / 2.0 + rng() * step / 2.0


def describe_failure(exc: BaseException | None) -> str:
    """Return a short, secret-free description of a failed attempt for a log line.

    :param exc: the exception of the attempt.
    """
    if isinstance(exc, IterableApiError):
        return f"HTTP {exc.status}" + (f" {exc.code}" if exc.code else "")
    if isinstance(exc, IterableConnectionError):
        return exc.reason or "connection error"
    return type(exc).__name__


class RetryController:
    """How one hook retries its calls: waits, deadline, attempt log and final error.

    The tenacity controller is built once and shared by every call of the hook (tenacity keeps
    each call's state in its own ``RetryCallState`` and per-thread statistics), so a call pays
    for no set-up. What differs between calls, the endpoint, travels on the exception.

    :param deadline: total seconds one call may take, retries and waits included.
    :param log: where each failed attempt is logged at WARNING (a stdlib or structlog logger).
    :param max_attempts: most attempts of one call, whatever the deadline.
    :param backoff_initial: first backoff step in seconds (no ``Retry-After``).
    :param backoff_max: largest backoff step in seconds.
    :param sleep: how to wait between attempts.
    """

    def __init__(
        self,
        *,
        deadline: float,
        log: logging.Logger | Any,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_initial: float = DEFAULT_BACKOFF_INITIAL,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.deadline = deadline
        self.log = log
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        kwargs: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
        # tenacity runs, after a retryable failure: wait (sets ``upcoming_sleep``), then stop;
        # then either before_sleep and the sleep, or retry_error_callback.
        self._retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            wait=self.wait,
            stop=self.should_stop,
            before_sleep=self.log_retry,
            retry_error_callback=self.give_up,
            reraise=True,
            **kwargs,
        )

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(*args)``, retrying it as this controller says; return its result.

        :param fn: one attempt of the call.
        :param args: its arguments.
        """
        return self._retrying(fn, *args)

    def wait(self, retry_state: RetryCallState) -> float:
        """Return the seconds to wait after the attempt that just failed (tenacity ``wait``)."""
        retry_after = getattr(_exception(retry_state), "retry_after", None)
        if retry_after is not None:
            return float(retry_after)
        return backoff_seconds(
            retry_state.attempt_number, initial=self.backoff_initial, maximum=self.backoff_max
        )

    def remaining(self, retry_state: RetryCallState) -> float:
        """Return the seconds left of the deadline after the attempt that just failed."""
        return self.deadline - (retry_state.seconds_since_start or 0.0)

    def should_stop(self, retry_state: RetryCallState) -> bool:
        """Return whether to give up rather than wait and try again (tenacity ``stop``)."""
        if retry_state.attempt_number >= self.max_attempts:
            return True
        return retry_state.upcoming_sleep > self.remaining(retry_state)

    def log_retry(self, retry_state: RetryCallState) -> None:
        """Log a failed attempt that will be retried, at WARNING: endpoint, what failed and the wait.

        Never the API key (it is only in a header) nor a body (bodies hold e-mail addresses).
        """
        exc = _exception(retry_state)
        self.log.warning(
            "Iterable %s attempt %d failed (%s); retrying in %.2f s",
            _endpoint(exc),
            retry_state.attempt_number,
            describe_failure(exc),
            retry_state.upcoming_sleep,
        )

    def give_up(self, retry_state: RetryCallState) -> NoReturn:
        """Log the last attempt and raise the error that ends the call (tenacity ``retry_error_callback``)."""
        exc = _exception(retry_state)
        attempts = retry_state.attempt_number
        elapsed = retry_state.seconds_since_start or 0.0
        self.log.warning(
            "Iterable %s attempt %d failed (%s); giving up after %.1f s",
            _endpoint(exc),
            attempts,
            describe_failure(exc),
            elapsed,
        )
        tried = f"gave up after {attempts} attempt{'s' if attempts != 1 else ''} in {elapsed:.1f} s"
        if isinstance(exc, IterableApiError):
            detail = tried
            if isinstance(exc, IterableRateLimitError):
                detail = self._rate_limit_detail(exc, max(0.0, self.remaining(retry_state)), tried)
            raise type(exc)(
                status=exc.status,
                endpoint=exc.endpoint,
                code=exc.code,
                msg=exc.msg,
                params=exc.params,
                retry_after=exc.retry_after,
                detail=detail,
            ) from exc
        if isinstance(exc, IterableConnectionError):
            raise IterableConnectionError(
                f"{exc}; {tried}", endpoint=exc.endpoint, reason=exc.reason, retryable=False
            ) from exc
        assert exc is not None  # tenacity calls this only after a failed attempt
        raise exc

    def _rate_limit_detail(self, exc: IterableRateLimitError, remaining: float, tried: str) -> str:
        if exc.retry_after is not None and exc.retry_after > remaining:
            return (
                f"Iterable asked to wait {exc.retry_after:.0f} s (Retry-After) before retrying, more "
                f"than the {remaining:.0f} s left of the retry deadline ({self.deadline:.0f} s), so "
                "the call failed now instead of waiting; run it again later"
            )
        return (
            f"still rate limited: {tried}. Lower the pace with the connection's 'rate_limits' "
            "extra, or raise the hook's retry_deadline"
        )


def _exception(retry_state: RetryCallState) -> BaseException | None:
    return retry_state.outcome.exception() if retry_state.outcome else None


def _endpoint(exc: BaseException | None) -> str:
    # Every retryable error the hook raises names its endpoint.
    return getattr(exc, "endpoint", None) or "request"
