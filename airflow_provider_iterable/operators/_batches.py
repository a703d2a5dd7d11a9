"""Sending a stream of records to a bulk endpoint: batches by count and bytes, read ahead, in flight.

:class:`BulkSender` is the whole sending half of the bulk operators, usable without one: give it
the function that sends one batch (one hook call, so one hook and one rate limiter serve every
batch) and an iterator of Iterable-shaped records, and it yields a :class:`BatchResult` as each
batch's answer returns, in the order the batches were read, while merging the answers into a
:class:`~airflow_provider_iterable.operators._summary.BulkSummary` and logging progress.

.. code-block:: python

    sender = BulkSender(lambda batch: hook.bulk_update_users(batch), noun="user", log=log)
    for result in sender.send(records):
        record_synced(result.accepted())
    summary = sender.summary.to_dict()
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from airflow_provider_iterable._values import is_whole_number
from airflow_provider_iterable.operators._base import fail
from airflow_provider_iterable.operators._summary import BulkSummary, Progress, failed_updates, split_accepted

#: Iterable's common practice for bulk calls: 1,000 records per request.
DEFAULT_BATCH_SIZE = 1000
#: Iterable refuses bodies over 4 MB (``BatchTooLarge``); stay under it with room to spare.
DEFAULT_MAX_BATCH_BYTES = 4_000_000
#: Requests of one bulk task awaiting their answers at once.
DEFAULT_MAX_IN_FLIGHT = 4
#: Bytes reserved for the request envelope around the items (``{"users": [...], ...}``).
ENVELOPE_BYTES = 512


def item_size(item: Mapping[str, Any]) -> int:
    """Return an upper bound of the bytes one record takes in a request body.

    ``json.dumps`` with its defaults (``", "`` separators, non-ASCII escaped as ``\\uXXXX``) is at
    least as long as any UTF-8 serialisation an HTTP client would send.
    """
    return len(json.dumps(item))


def check_item_fits(item: Mapping[str, Any], raw_length: int | None, max_bytes: int, where: str) -> None:
    """Fail before sending anything when one record alone is larger than a request may be.

    :param item: the record.
    :param raw_length: the length of its text in the input, if known (short ones are not measured).
    :param max_bytes: most bytes per request body.
    :param where: where the record came from, for the message.
    """
    budget = max_bytes - ENVELOPE_BYTES
    # A raw text record escapes to at most 6 bytes per character; only long ones are measured.
    if raw_length is not None and raw_length * 6 < budget:
        return
    size = item_size(item)
    if size > budget:
        raise fail(
            f"{where}: this record alone is {size:,} bytes of JSON, more than max_batch_bytes "
            f"({max_bytes:,}, less {ENVELOPE_BYTES} for the request envelope) allows in one request"
        )


def batches(
    items: Iterable[dict[str, Any]], *, max_count: int, max_bytes: int
) -> Iterator[list[dict[str, Any]]]:
    """Group ``items`` into lists of at most ``max_count`` items whose JSON stays under ``max_bytes``.

    :param items: the records, streamed.
    :param max_count: most records per batch.
    :param max_bytes: most bytes per request body (the envelope is accounted for).
    """
    budget = max_bytes - ENVELOPE_BYTES
    batch: list[dict[str, Any]] = []
    size = 0
    for item in items:
        item_bytes = item_size(item) + 2  # ", " between items
        if batch and (len(batch) >= max_count or size + item_bytes > budget):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_bytes
    if batch:
        yield batch


_DONE = object()


def prefetch(source: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Iterate ``source`` in a background thread, ``depth`` items ahead.

    Parsing the next batch overlaps with waiting for Iterable's answer to the current one, which
    matters when the rate limit allows a batch every few tens of milliseconds. The bounded queue
    keeps memory flat. An exception in the reader is re-raised here.
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def _put(value: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run() -> None:
        try:
            for value in source:
                if not _put(value):
                    break
            else:
                _put(_DONE)
        except BaseException as exc:
            _put(exc)
        finally:
            # Close the reader's generator (and with it the input file) in the thread that runs it.
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=_run, name="iterable-bulk-reader", daemon=True)
    thread.start()
    try:
        while True:
            value = buffer.get()
            if value is _DONE:
                return
            if isinstance(value, BaseException):
                raise value
            yield value
    finally:
        stop.set()
        thread.join(timeout=5)


@dataclass(frozen=True)
class BatchLimits:
    """How records are grouped into requests and how many requests overlap.

    :param max_count: most records per request (Iterable's practice: 1,000).
    :param max_bytes: most bytes of JSON per request body (Iterable refuses bodies over 4 MB).
    :param max_in_flight: most requests awaiting their answers at once.
    """

    max_count: int = DEFAULT_BATCH_SIZE
    max_bytes: int = DEFAULT_MAX_BATCH_BYTES
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT

    @classmethod
    def checked(cls, *, batch_size: Any, max_batch_bytes: Any, max_in_flight: Any) -> BatchLimits:
        """Return the limits from rendered operator arguments, or fail naming the wrong one."""
        return cls(
            max_count=_at_least(batch_size, "batch_size", 1, " (Iterable's practice: 1000)"),
            max_bytes=_at_least(max_batch_bytes, "max_batch_bytes", 2 * ENVELOPE_BYTES),
            max_in_flight=_at_least(max_in_flight, "max_in_flight", 1),
        )


def _at_least(value: Any, name: str, minimum: int, hint: str = "") -> int:
    if not is_whole_number(value, minimum=minimum):
        raise fail(f"{name} must be a whole number of at least {minimum}{hint}, got {value!r}")
    return value


@dataclass(frozen=True)
class BatchResult:
    """One batch and Iterable's answer to it.

    :param number: the batch's number, from 1, in the order batches were read.
    :param first: the position of its first record in the input, from 1.
    :param records: the records the request carried.
    :param answer: Iterable's answer (the bulk counts and ``failedUpdates``).
    """

    number: int
    first: int
    records: list[dict[str, Any]]
    answer: Any

    def accepted(self) -> list[Mapping[str, Any]]:
        """Return the records Iterable accepted (see :func:`split_accepted`)."""
        return split_accepted(self.records, self.answer)[0]

    def not_accepted(self) -> list[Mapping[str, Any]]:
        """Return the records Iterable rejected, or could not be told apart from rejected ones."""
        return split_accepted(self.records, self.answer)[1]


@contextmanager
def _as_raised(action: str) -> Iterator[None]:
    yield


class BulkSender:
    """Send records to one bulk endpoint in batches, paced by the hook, several requests in flight.

    Requests start at the pace of the hook's rate limiter; up to ``limits.max_in_flight`` of them
    await their answers at once, so a slow answer does not cost the next request its slot. An
    error answer is raised (through ``errors``) once the requests already in flight finished;
    nothing after it is sent. With more than one in flight, Iterable may apply batches in another
    order than they were read. A caller that stops iterating :meth:`send` early (or raises while
    handling a result) still waits for the requests in flight, whose results it then never sees:
    treat those records as not known to be accepted.

    :param send_batch: sends one batch and returns Iterable's answer (one hook call); it runs in
        worker threads.
    :param limits: batch size, byte and in-flight limits.
    :param noun: what a record is, for messages (``"user"``).
    :param total: how many records will be sent, for progress and messages, if known.
    :param log: where progress goes (INFO) and the identifiers Iterable rejected (DEBUG only:
        they are personal data); ``None`` logs nothing.
    :param log_every_batches: log progress every this many batches (and at the end).
    :param summary: the summary the answers are merged into (default: a new
        :class:`~airflow_provider_iterable.operators._summary.BulkSummary`).
    :param errors: a context manager factory wrapped around each answer, given what was being done
        (``"sending users 1001-2000 of 5000 (batch 2)"``), to translate errors; default: none.
    :param read_ahead: batches read ahead in a background thread while requests are out; 0 reads
        the records in the thread that iterates :meth:`send` (for a source bound to its thread).
    """

    def __init__(
        self,
        send_batch: Callable[[list[dict[str, Any]]], Any],
        *,
        limits: BatchLimits | None = None,
        noun: str = "record",
        total: int | None = None,
        log: logging.Logger | Any = None,
        log_every_batches: int = 10,
        summary: BulkSummary | None = None,
        errors: Callable[[str], AbstractContextManager[Any]] | None = None,
        read_ahead: int = 2,
    ) -> None:
        self.send_batch = send_batch
        self.limits = limits or BatchLimits()
        self.noun = noun
        self.total = total
        self.log = log
        self.summary = summary if summary is not None else BulkSummary()
        self.progress = Progress(log, noun, total, every=log_every_batches) if log is not None else None
        self.errors = errors or _as_raised
        self.read_ahead = read_ahead

    def send(self, records: Iterable[dict[str, Any]]) -> Iterator[BatchResult]:
        """Send ``records``; yield each batch's result as its answer returns, in reading order.

        :param records: Iterable-shaped records, streamed (checked beforehand by the caller).
        """
        limits = self.limits
        grouped: Iterator[list[dict[str, Any]]] = batches(
            records, max_count=limits.max_count, max_bytes=limits.max_bytes
        )
        if self.read_ahead > 0:
            grouped = prefetch(grouped, depth=self.read_ahead)
        pending: deque[tuple[Future[Any], int, int, list[dict[str, Any]]]] = deque()
        try:
            with ThreadPoolExecutor(
                max_workers=limits.max_in_flight, thread_name_prefix="iterable-bulk"
            ) as pool:
                queued = 0
                for number, batch in enumerate(grouped, start=1):
                    if len(pending) >= limits.max_in_flight:
                        yield self._collect(pending.popleft())
                    first, queued = queued + 1, queued + len(batch)
                    pending.append((pool.submit(self.send_batch, batch), number, first, batch))
                while pending:
                    yield self._collect(pending.popleft())
        finally:
            close = getattr(grouped, "close", None)
            if close is not None:
                close()

    def send_all(self, records: Iterable[dict[str, Any]]) -> BulkSummary:
        """Send ``records`` and return the merged summary."""
        # Consume without holding on to the last result (and with it a whole batch of records).
        deque(self.send(records), maxlen=0)
        return self.summary

    def _collect(self, entry: tuple[Future[Any], int, int, list[dict[str, Any]]]) -> BatchResult:
        future, number, first, batch = entry
        last = first + len(batch) - 1
        of_total = f" of {self.total}" if self.total is not None else ""
        with self.errors(f"sending {self.noun}s {first}-{last}{of_total} (batch {number})"):
            answer = future.result()
        self.summary.add(answer, len(batch))
        if self.progress is not None:
            self.progress.batch_sent(len(batch))
        failed = failed_updates(answer)
        if failed and self.log is not None:
            # Identifiers are personal data: DEBUG only (the failure text carries counts).
            self.log.debug("Batch %d: Iterable rejected %s", number, failed)
        return BatchResult(number=number, first=first, records=batch, answer=answer)
