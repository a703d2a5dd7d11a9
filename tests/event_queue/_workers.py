"""Functions run in child processes by the queue's multi-process tests (importable by name)."""

from __future__ import annotations

import random
from typing import Any

from airflow_provider_iterable.event_queue import EventQueue, NewEvent, QueueUnavailableError


def _event(key: str, n: int) -> NewEvent:
    return NewEvent(
        conn_id="iterable_default",
        kind="system",
        payload={"email": f"user{n}@example.com", "eventName": "emailOpen", "dataFields": {"n": n}},
        query={},
        event_name="emailOpen",
        workflow_id=None,
        campaign_id=1001,
        email=f"user{n}@example.com",
        user_id=None,
        dedupe_key=key,
    )


def append_identical(url: str, barrier: Any, results: Any) -> None:
    """Race the siblings twice: to create the schema, then to append the same event.

    Reports ``(id, stored)``.
    """
    queue = EventQueue(url, busy_timeout=10)
    barrier.wait(timeout=60)
    queue.head_id()  # every process creates the schema of the new queue at once
    barrier.wait(timeout=60)
    results.put(queue.append(_event("identical", 0), dedupe_window_seconds=3600))
    queue.close()


def _store(queue: EventQueue, events: list[NewEvent]) -> list[tuple[str, int, bool]]:
    """Append ``events`` (one alone through ``append``), retrying a refusal as a sender retries a 503.

    :return: ``(dedupe_key, id, stored)`` per event.
    """
    while True:
        try:
            if len(events) == 1:
                stored = [queue.append(events[0], dedupe_window_seconds=3600)]
            else:
                stored = queue.append_many(events, dedupe_window_seconds=3600)
            break
        except QueueUnavailableError:
            continue
    return [(e.dedupe_key, event_id, new) for e, (event_id, new) in zip(events, stored, strict=True)]


def append_range(url: str, start: int, count: int, batch: int, barrier: Any, results: Any) -> None:
    """Append events ``start .. start+count`` (batches of ``batch``); report every acknowledgement.

    A batch refused with :class:`QueueUnavailableError` is retried, as a sender retries a 503.
    Reports ``(dedupe_key, id, stored)`` for each acknowledged event, then ``None``.
    """
    queue = EventQueue(url, busy_timeout=10)
    queue.head_id()
    barrier.wait(timeout=30)
    acked: list[tuple[str, int, bool]] = []
    for first in range(start, start + count, batch):
        numbers = range(first, min(first + batch, start + count))
        acked += _store(queue, [_event(f"event-{n:06d}", n) for n in numbers])
    results.put(acked)
    queue.close()


def append_overlapping(url: str, seed: int, keys: int, batch: int, barrier: Any, results: Any) -> None:
    """Append every one of ``keys`` events, shuffled by ``seed``, in batches holding repeats.

    Each batch also carries a second copy of its first event, so a key repeats within a batch
    as well as across the sibling processes. Reports ``(dedupe_key, id, stored)`` per event.
    """
    order = list(range(keys))
    random.Random(seed).shuffle(order)
    queue = EventQueue(url, busy_timeout=10)
    queue.head_id()
    barrier.wait(timeout=30)
    acked: list[tuple[str, int, bool]] = []
    for first in range(0, keys, batch):
        numbers = order[first : first + batch]
        numbers.append(numbers[0])
        acked += _store(queue, [_event(f"event-{n:06d}", n) for n in numbers])
    results.put(acked)
    queue.close()
