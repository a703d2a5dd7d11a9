"""Group commit: many concurrent deliveries become few transactions.

Each request hands its event to the writer and awaits a future; the writer takes everything
that is waiting (up to ``max_batch``), stores it with one ``EventQueue.append_many`` call (one
transaction, one fsync), and resolves every future on its own event loop. Under load the fsync
cost is shared by the whole batch, which is what lets a durable queue keep up with a receiver
that stores nothing; at low load a batch is one event and nothing waits. The event loop never
blocks on the database.

:class:`GroupCommitWriter` runs the writes in a thread of the receiver's process (``writer=
"thread"``); :mod:`~airflow_provider_iterable.webhooks.writer_process` runs the same
:func:`store_batch` in a process of its own (the default). :class:`Purger` removes events past
retention in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from airflow_provider_iterable._values import whole_number
from airflow_provider_iterable.event_queue import EventQueue, NewEvent, QueueUnavailableError

log = logging.getLogger(__name__)

_Pending = tuple[NewEvent, asyncio.AbstractEventLoop, "asyncio.Future[tuple[int, bool]]"]


_Outcome = tuple["asyncio.Future[Any]", Any, "BaseException | None"]


def _resolve_all(outcomes: list[_Outcome]) -> None:
    # Runs on the requests' loop; a request may have been cancelled meanwhile.
    for future, value, error in outcomes:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class LocalQueue:
    """The event queue a writer keeps in the receiver's own process, opened on first use.

    :param factory: Returns a new :class:`EventQueue`; called again after a failure to open it.
    """

    def __init__(self, factory: Callable[[], EventQueue]) -> None:
        self._factory = factory
        self._queue: EventQueue | None = None
        self._lock = threading.Lock()

    def get(self) -> EventQueue:
        """Return the open queue, opening it if needed (blocking; call from a thread).

        :raises QueueUnavailableError: When the queue cannot be opened.
        """
        with self._lock:
            if self._queue is None:
                try:
                    self._queue = self._factory()
                except QueueUnavailableError:
                    raise
                except Exception as exc:
                    raise QueueUnavailableError(f"cannot open the event queue: {type(exc).__name__}") from exc
            return self._queue

    def close(self) -> None:
        """Close the queue if it was opened; it opens again on the next :meth:`get`."""
        with self._lock:
            queue, self._queue = self._queue, None
        if queue is not None:
            try:
                queue.close()
            except Exception:  # closing must not mask the shutdown of everything else
                log.debug("closing the event queue failed", exc_info=True)


class GroupCommitWriter:
    """Store events in batches from a background thread.

    :param queue_factory: Returns the :class:`EventQueue` to write to; called in the writer
        thread on first use, and again after a failure to open it.
    :param dedupe_window_seconds: Passed to ``append_many``.
    :param max_batch: Most events in one transaction.
    :param quick_failure_seconds: A batch that fails faster than this is retried once.
    """

    def __init__(
        self,
        queue_factory: Callable[[], EventQueue],
        *,
        dedupe_window_seconds: float | None,
        max_batch: int = 256,
        quick_failure_seconds: float = 1.0,
    ) -> None:
        whole_number(max_batch, "max_batch", minimum=1)
        self._local = LocalQueue(queue_factory)
        self._dedupe_window = dedupe_window_seconds
        self._max_batch = max_batch
        self._quick_failure = quick_failure_seconds
        self._pending: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batches = 0  # transactions committed, for diagnostics and benchmarks

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="iterable-webhooks-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Store what is pending, then stop the thread and close the queue.

        :param timeout: Seconds to wait for the thread to finish.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._thread = None
        self._local.close()

    async def append(self, event: NewEvent) -> tuple[int, bool]:
        """Store ``event`` durably and return ``(event id, newly stored)``.

        :param event: The classified delivery.
        :raises QueueUnavailableError: When the queue cannot commit.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, bool]] = loop.create_future()
        with self._cond:
            if self._thread is None:
                raise QueueUnavailableError("the receiver is shutting down")
            self._pending.append((event, loop, future))
            self._cond.notify()
        return await future

    def queue(self) -> EventQueue:
        """Return the open queue, opening it if needed (blocking; call from a thread).

        :raises QueueUnavailableError: When the queue cannot be opened.
        """
        return self._local.get()

    def _take_batch(self) -> list[_Pending]:
        with self._cond:
            while not self._pending and not self._stopping:
                self._cond.wait()
            batch: list[_Pending] = []
            while self._pending and len(batch) < self._max_batch:
                batch.append(self._pending.popleft())
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                return  # stopping and nothing left
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        results, errors = store_batch(
            self.queue,
            [item[0] for item in batch],
            dedupe_window_seconds=self._dedupe_window,
            quick_failure_seconds=self._quick_failure,
        )
        if all(error is None for error in errors):
            self.batches += 1
        # One wake-up per event loop and batch, not one per event.
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for (_, loop, future), result, error in zip(batch, results, errors, strict=True):
            by_loop.setdefault(loop, []).append((future, result, error))
        for loop, outcomes in by_loop.items():
            # RuntimeError: that loop has closed, nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve_all, outcomes)


def store_batch(
    queue: Callable[[], EventQueue],
    events: list[NewEvent],
    *,
    dedupe_window_seconds: float | None,
    quick_failure_seconds: float,
) -> tuple[list[Any], list[BaseException | None]]:
    """Store ``events`` in one transaction; return one result and one error per event.

    :param queue: Returns the open queue.
    :param events: The events, in order.
    :param dedupe_window_seconds: Passed to ``append_many``.
    :param quick_failure_seconds: A batch that fails faster than this is retried once.
    """
    try:
        return _append_many(queue, events, dedupe_window_seconds, quick_failure_seconds), [None] * len(events)
    except QueueUnavailableError as exc:
        return [None] * len(events), [exc] * len(events)
    except Exception as exc:
        # Not the store being down: one event the database refused. Store them one by one so
        # only that delivery fails and the others in its batch are not held hostage. Only the
        # type at WARNING: an exception's text may quote a payload.
        log.warning(
            "a batch of %d events failed (%s); storing them one at a time", len(events), type(exc).__name__
        )
        log.debug("the batch failed with", exc_info=True)
        results: list[Any] = []
        errors: list[BaseException | None] = []
        for event in events:
            try:
                results.append(queue().append(event, dedupe_window_seconds=dedupe_window_seconds))
                errors.append(None)
            except Exception as exc:
                results.append(None)
                errors.append(exc)
        return results, errors


def _append_many(
    queue: Callable[[], EventQueue],
    events: list[NewEvent],
    dedupe_window_seconds: float | None,
    quick_failure_seconds: float,
) -> list[tuple[int, bool]]:
    started = time.monotonic()
    try:
        return queue().append_many(events, dedupe_window_seconds=dedupe_window_seconds)
    except QueueUnavailableError:
        # A failure well before the busy timeout is a transient one (a connection the database
        # server closed, a lock that could not wait): one quick retry spares the senders a 503.
        # A store that stays down fails again and is reported.
        if time.monotonic() - started > quick_failure_seconds:
            raise
        time.sleep(0.05)
        return queue().append_many(events, dedupe_window_seconds=dedupe_window_seconds)


class Purger:
    """Purge events past retention in a background thread, never on the request path.

    :param queue: Returns the queue to purge (the writer's).
    :param retention_days: Passed to ``EventQueue.purge``; ``None`` means the configured value.
    :param interval: Seconds between purges.
    :param first_delay: Seconds before the first purge (lets start-up finish first); default
        the smaller of 60 seconds and ``interval``.
    """

    def __init__(
        self,
        queue: Callable[[], EventQueue],
        *,
        retention_days: float | None,
        interval: float = 3600.0,
        first_delay: float | None = None,
    ) -> None:
        self._queue = queue
        self._retention_days = retention_days
        self._interval = interval
        self._first_delay = min(60.0, interval) if first_delay is None else first_delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def start(self) -> None:
        """Start the purge thread (idempotent)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="iterable-webhooks-purge", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the purge thread.

        :param timeout: Seconds to wait for it.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        delay = self._first_delay
        while not self._stop.wait(delay):
            delay = self._interval
            try:
                removed = self._queue().purge(retention_days=self._retention_days)
                self.runs += 1
                log.info("purged %d webhook events past retention", removed)
            except Exception as exc:
                log.warning("purging webhook events failed: %s", exc)
