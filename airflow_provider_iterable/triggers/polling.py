"""How a trigger reads the event queue: opening a reader off the event loop, riding out failures, and
giving up at a deadline.

A poll that fails (database restarting, lock timeout) is retried with capped exponential
backoff, never raised: one unavailable queue must not fail every waiting sensor at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import TypeVar

from airflow_provider_iterable.event_queue import AsyncEventReader, notice_backend

log = logging.getLogger(__name__)

#: Seconds between two polls of the queue when nothing arrives (PostgreSQL wakes earlier, on
#: the queue's ``NOTIFY`` doorbell).
DEFAULT_POLL_INTERVAL = 0.2
#: Longest wait between two attempts after the queue failed to answer.
MAX_RETRY_BACKOFF = 10.0

T = TypeVar("T")


class Backoff:
    """Capped exponential backoff for a poll that failed; logs each failure once per attempt.

    :param base: Seconds of the first wait (the poll interval; at least 0.05).
    :param what: What is polling, for the log line (``"shared poll"``, ``"sensor window scan"``).
    """

    def __init__(self, base: float, what: str) -> None:
        self.base = max(base, 0.05)
        self.what = what
        self.failures = 0

    def ok(self) -> None:
        """Record a success: the next failure starts the backoff again from the base."""
        if self.failures:
            log.info("The event queue answers again (%s) after %d failed attempts.", self.what, self.failures)
        self.failures = 0

    async def failed(self, exc: BaseException) -> None:
        """Log a failure and wait before the next attempt.

        :param exc: What the attempt raised (its text names the cause, never event data).
        """
        self.failures += 1
        delay = min(MAX_RETRY_BACKOFF, self.base * 2 ** min(self.failures, 16))
        log.warning(
            "Reading the event queue failed (%s, attempt %d): %s; retrying in %.1f s.",
            self.what,
            self.failures,
            exc,
            delay,
        )
        await asyncio.sleep(delay)


async def retrying(call: Callable[[], Awaitable[T]], backoff: Backoff) -> T:
    """Await ``call()`` until it succeeds; a failing queue is retried, never fatal.

    :param call: Makes one attempt.
    :param backoff: How long to wait between attempts.
    """
    while True:
        try:
            result = await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await backoff.failed(exc)
            continue
        backoff.ok()
        return result


async def until_deadline(events: AsyncGenerator[T, None], deadline: datetime, timeout: T) -> AsyncIterator[T]:
    """Pass on ``events`` until ``deadline``; then close them, yield ``timeout`` and stop.

    :param events: What the trigger yields while it waits (closed at the deadline: its loop's
        ``finally`` releases the reader).
    :param deadline: When to stop waiting (timezone-aware).
    :param timeout: What to yield instead of an event at the deadline.
    """
    try:
        while True:
            remaining = (deadline - datetime.now(timezone.utc)).total_seconds()
            if remaining <= 0:
                break
            try:
                event = await asyncio.wait_for(anext(events), remaining)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                break
            yield event
    finally:
        await events.aclose()
    yield timeout


def _config_queue_url() -> str:
    from airflow_provider_iterable import config

    return config.queue_url()


async def open_reader(queue_url: str | None) -> AsyncEventReader:
    """Open a reader on ``queue_url``, or on ``[iterable] queue_url`` when it is ``None``.

    The first time a triggerer opens a queue it logs what the backend implies for the deployment.

    :param queue_url: SQLAlchemy URL of the event queue, or ``None``.
    """

    def resolve() -> str:
        # A ``_cmd``/``_secret`` lookup and a look at the mount table: not in the event loop.
        url = queue_url if queue_url is not None else _config_queue_url()
        notice_backend(url)
        return url

    return AsyncEventReader(await asyncio.to_thread(resolve))


__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "MAX_RETRY_BACKOFF",
    "Backoff",
    "open_reader",
    "retrying",
    "until_deadline",
]
