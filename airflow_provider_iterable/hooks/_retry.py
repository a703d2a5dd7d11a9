"""What to retry and how long to wait between attempts of one call to Iterable.

One predicate (:func:`is_retryable`) decides for every endpoint; :class:`RetryController` holds
the state of one call: the wait before each next attempt (``Retry-After`` first, otherwise
exponential backoff with jitter, capped), the total deadline, the log line of each failed
attempt, and the error raised when giving up.

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
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn

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
    "is_retryable",
    "parse_retry_after",
]

#: First backoff step in seconds when the server gives no ``Retry-After``.
DEFAULT_BACKOFF_INITIAL = 0.5
#: Largest single backoff in seconds.
DEFAULT_BACKOFF_MAX = 30.0
#: Most attempts of one call, whatever the deadline.
DEFAULT_MAX_ATTEMPTS = 10

_DELTA_SECONDS = re.compile(r"^\s*\d+(\.\d+)?\s*$")


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
    """The retry state of one call: waits, deadline, attempt log and final error.

    :param endpoint: ``"METHOD /api/path-template"``, for log lines and errors.
    :param deadline: total seconds the call may take, retries and waits included.
    :param log: where each failed attempt is logged at WARNING (a stdlib or structlog logger).
    :param max_attempts: most attempts, whatever the deadline.
    :param backoff_initial: first backoff step in seconds (no ``Retry-After``).
    :param backoff_max: largest backoff step in seconds.
    :param sleep: how to wait between attempts.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        deadline: float,
        log: logging.Logger | Any,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_initial: float = DEFAULT_BACKOFF_INITIAL,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.deadline = deadline
        self.log = log
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._sleep = sleep
        # The wait after each attempt is drawn once: the log line and tenacity's sleep must agree.
        self._waits: dict[int, float] = {}

    def retrying(self) -> Retrying:
        """Return the tenacity controller of this call."""
        kwargs: dict[str, Any] = {}
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        return Retrying(
            retry=retry_if_exception(is_retryable),
            wait=self.wait,
            stop=self.should_stop,
            after=self.after_attempt,
            retry_error_callback=self.give_up,
            reraise=True,
            **kwargs,
        )

    def wait(self, retry_state: RetryCallState) -> float:
        """Return the seconds to wait after the attempt that just failed (tenacity ``wait``)."""
        attempt = retry_state.attempt_number
        if attempt not in self._waits:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                self._waits[attempt] = float(retry_after)
            else:
                self._waits[attempt] = backoff_seconds(
                    attempt, initial=self.backoff_initial, maximum=self.backoff_max
                )
        return self._waits[attempt]

    def remaining(self, retry_state: RetryCallState) -> float:
        """Return the seconds left of the deadline after the attempt that just failed."""
        return self.deadline - (retry_state.seconds_since_start or 0.0)

    def should_stop(self, retry_state: RetryCallState) -> bool:
        """Return whether to give up rather than wait and try again (tenacity ``stop``)."""
        if retry_state.attempt_number >= self.max_attempts:
            return True
        return self.wait(retry_state) > self.remaining(retry_state)

    def after_attempt(self, retry_state: RetryCallState) -> None:
        """Log a failed, retryable attempt at WARNING: endpoint, what failed and the wait.

        Never the API key (it is only in a header) nor a body (bodies hold e-mail addresses).
        """
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = self.wait(retry_state)
        if self.should_stop(retry_state):
            self.log.warning(
                "Iterable %s attempt %d failed (%s); giving up after %.1f s",
                self.endpoint,
                retry_state.attempt_number,
                describe_failure(exc),
                retry_state.seconds_since_start or 0.0,
            )
        else:
            self.log.warning(
                "Iterable %s attempt %d failed (%s); retrying in %.2f s",
                self.endpoint,
                retry_state.attempt_number,
                describe_failure(exc),
                wait,
            )

    def give_up(self, retry_state: RetryCallState) -> NoReturn:
        """Raise the error that ends the call once retrying stops (tenacity ``retry_error_callback``)."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        attempts = retry_state.attempt_number
        elapsed = retry_state.seconds_since_start or 0.0
        tried = f"gave up after {attempts} attempt{'s' if attempts != 1 else ''} in {elapsed:.1f} s"
        if isinstance(exc, IterableRateLimitError):
            remaining = max(0.0, self.remaining(retry_state))
            if exc.retry_after is not None and exc.retry_after > remaining:
                detail = (
                    f"Iterable asked to wait {exc.retry_after:.0f} s (Retry-After) before retrying, "
                    f"more than the {remaining:.0f} s left of the retry deadline ({self.deadline:.0f} s), "
                    "so the call failed now instead of waiting; run it again later"
                )
            else:
                detail = (
                    f"still rate limited: {tried}. Lower the pace with the connection's "
                    "'rate_limits' extra, or raise the hook's retry_deadline"
                )
            raise IterableRateLimitError(
                status=exc.status,
                endpoint=exc.endpoint,
                code=exc.code,
                msg=exc.msg,
                params=exc.params,
                retry_after=exc.retry_after,
                detail=detail,
            ) from exc
        if isinstance(exc, IterableApiError):
            raise type(exc)(
                status=exc.status,
                endpoint=exc.endpoint,
                code=exc.code,
                msg=exc.msg,
                params=exc.params,
                retry_after=exc.retry_after,
                detail=tried,
            ) from exc
        if isinstance(exc, IterableConnectionError):
            raise IterableConnectionError(
                f"{exc}; {tried}", endpoint=exc.endpoint, reason=exc.reason, retryable=False
            ) from exc
        assert exc is not None  # tenacity calls this only after a failed attempt
        raise exc
