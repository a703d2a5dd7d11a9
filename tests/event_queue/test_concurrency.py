"""Concurrent writers and readers: one row per identical event, nothing lost, nothing doubled (R2, R8)."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_provider_iterable.event_queue import AsyncEventReader, EventQueue, WebhookFilter
from tests.event_queue import _workers
from tests.event_queue.conftest import make_event


def _context() -> multiprocessing.context.BaseContext:
    """Processes forked from a clean server process that has the queue code imported already.

    Not ``fork`` (this process runs threads), and quicker than ``spawn``, which imports
    everything again in each child.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.event_queue._workers"])
    return ctx


def test_twenty_threads_appending_the_same_event_store_one_row(queue: EventQueue) -> None:
    barrier = threading.Barrier(20)
    queue.head_id()  # schema in place, so the race is between the appends

    def append() -> tuple[int, bool]:
        barrier.wait(timeout=30)
        return queue.append(make_event(dedupe_key="identical"), dedupe_window_seconds=3600)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: append(), range(20)))
    assert sum(stored for _, stored in results) == 1
    assert len({event_id for event_id, _ in results}) == 1
    assert [e.id for e in queue.fetch()] == [results[0][0]]


def test_four_processes_appending_the_same_event_store_one_row(queue_url: str) -> None:
    """Four processes open a new queue at once (one schema), then append one event at once (one row)."""
    ctx = _context()
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_workers.append_identical, args=(queue_url, barrier, results)) for _ in range(4)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert sum(stored for _, stored in outcomes) == 1
    assert len({event_id for event_id, _ in outcomes}) == 1
    queue = EventQueue(queue_url)
    assert len(queue.fetch()) == 1
    queue.close()


async def _read_everything(url: str, expected: int, deadline: float) -> list[int]:
    """Poll like a trigger does (``fetch(after_id=last)``) until ``expected`` events were seen."""
    reader = AsyncEventReader(url)
    seen: list[int] = []
    last = 0
    try:
        while len(seen) < expected and time.monotonic() < deadline:
            page = await reader.fetch(
                WebhookFilter(conn_id="iterable_default", event_name="emailOpen"), after_id=last, limit=500
            )
            if page:
                seen += [e.id for e in page]
                last = page[-1].id
            else:
                await reader.wait_for_insert(0.02)
    finally:
        await reader.close()
    return seen


def _writers_and_readers(url: str, total: int, batch: int) -> None:
    ctx = _context()
    writers = 4
    barrier = ctx.Barrier(writers)
    results = ctx.Queue()
    share = total // writers
    procs = [
        ctx.Process(target=_workers.append_range, args=(url, i * share, share, batch, barrier, results))
        for i in range(writers)
    ]
    EventQueue(url).head_id()  # the readers start on an existing schema
    for proc in procs:
        proc.start()

    async def read_twice() -> list[list[int]]:
        deadline = time.monotonic() + 240
        return list(await asyncio.gather(*(_read_everything(url, total, deadline) for _ in range(2))))

    seen_by_reader = asyncio.run(read_twice())
    acked = [item for _ in procs for item in results.get(timeout=120)]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0

    queue = EventQueue(url)
    rows = []
    after = 0
    while page := queue.fetch(after_id=after, limit=10_000):
        rows += page
        after = page[-1].id
    queue.close()
    stored = {e.id: e.payload["dataFields"]["n"] for e in rows}
    # Every acknowledged event is stored, once, under the id it was acknowledged with.
    assert len(acked) == total and all(new for _, _, new in acked)
    assert len(rows) == total and len(stored) == total
    assert sorted(f"event-{n:06d}" for n in stored.values()) == sorted(key for key, _, _ in acked)
    assert {event_id for _, event_id, _ in acked} == set(stored)
    # Each reader saw every event exactly once, in id order: none skipped by a slower commit.
    for seen in seen_by_reader:
        assert seen == sorted(stored)
    if url.startswith("sqlite"):
        raw = sqlite3.connect(url.removeprefix("sqlite:///"))
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        raw.close()


def test_four_writer_processes_and_two_async_readers_lose_and_double_nothing(queue_url: str) -> None:
    _writers_and_readers(queue_url, total=400, batch=3)


@pytest.mark.slow
def test_five_thousand_events_from_four_processes_with_two_readers(queue_url: str) -> None:
    _writers_and_readers(queue_url, total=5_000, batch=1)


def test_four_processes_appending_overlapping_batches_store_each_key_once(queue_url: str) -> None:
    """Batches from four processes share their dedupe keys (and repeat one inside each batch).

    Every key is stored once; every process is told the same id for it, and that row holds the
    event of that key; exactly one acknowledgement per key says "stored".
    """
    ctx = _context()
    writers, keys = 4, 240
    barrier = ctx.Barrier(writers)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_workers.append_overlapping, args=(queue_url, seed, keys, 7, barrier, results))
        for seed in range(writers)
    ]
    EventQueue(queue_url).head_id()
    for proc in procs:
        proc.start()
    acked = [item for _ in procs for item in results.get(timeout=120)]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    queue = EventQueue(queue_url)
    rows = queue.fetch(limit=10_000)
    queue.close()
    assert len(rows) == keys
    key_of_row = {e.id: f"event-{e.payload['dataFields']['n']:06d}" for e in rows}
    ids_by_key: dict[str, set[int]] = {}
    for key, event_id, _ in acked:
        ids_by_key.setdefault(key, set()).add(event_id)
    assert all(len(ids) == 1 for ids in ids_by_key.values())
    assert {key: ids.pop() for key, ids in ids_by_key.items()} == {key: i for i, key in key_of_row.items()}
    stored_acks = [key for key, _, new in acked if new]
    assert sorted(stored_acks) == sorted(key_of_row.values())
