"""The asynchronous reader: same answers as the synchronous queue, never blocking the loop (R11)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_iterable.event_queue import AsyncEventReader, EventQueue, WebhookFilter
from airflow_provider_iterable.event_queue import reader as reader_module
from tests.event_queue.conftest import Clock, make_event


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(coro_fn(), timeout=60))


def test_async_fetch_answers_as_the_sync_fetch(queue: EventQueue, queue_url: str, clock: Clock) -> None:
    for i in range(12):
        queue.append(
            make_event(
                event_name=["emailSend", "emailOpen", None][i % 3],
                kind="journey" if i % 3 == 2 else "system",
                workflow_id=5 if i % 4 == 0 else None,
                conn_id="iterable_eu" if i % 5 == 0 else "iterable_default",
            ),
            dedupe_window_seconds=60,
        )
        clock.advance(seconds=30)
    since = clock.now.replace(minute=clock.now.minute - 3)
    cases: list[tuple[WebhookFilter, dict[str, Any]]] = [
        (WebhookFilter(), {}),
        (WebhookFilter(), {"after_id": 4, "limit": 3}),
        (WebhookFilter(conn_id="iterable_default", event_name="emailOpen"), {}),
        (WebhookFilter(conn_id="iterable_default", kind="system", event_name="emailSend"), {}),
        (WebhookFilter(kind="journey"), {}),
        (WebhookFilter(workflow_id=5), {}),
        (WebhookFilter(since=since), {}),
        (WebhookFilter(since=since, conn_id="iterable_default"), {}),
        (WebhookFilter(conn_id="nope"), {}),
    ]

    async def scenario() -> list[list[Any]]:
        async with AsyncEventReader(queue_url) as reader:
            assert await reader.head_id() == queue.head_id()
            return [await reader.fetch(where, **paging) for where, paging in cases]

    answers = run(scenario)
    for (where, paging), got in zip(cases, answers, strict=True):
        assert got == queue.fetch(where, **paging), (where, paging)
    assert any(answers) and answers[-1] == []


def test_async_cursors_move_forward_and_are_shared_with_the_sync_side(
    queue: EventQueue, queue_url: str
) -> None:
    async def scenario() -> None:
        async with AsyncEventReader(queue_url) as reader:
            assert await reader.get_cursor("watcher") is None
            await reader.set_cursor("watcher", 8)
            await reader.set_cursor("watcher", 3)
            assert await reader.get_cursor("watcher") == 8
            with pytest.raises(ValueError, match="event_id"):
                await reader.set_cursor("watcher", -2)

    run(scenario)
    assert queue.get_cursor("watcher") == 8
    queue.set_cursor("watcher", 9)

    async def check() -> int | None:
        async with AsyncEventReader(queue_url) as reader:
            return await reader.get_cursor("watcher")

    assert run(check) == 9


def test_async_fetch_rejects_bad_arguments(queue_url: str) -> None:
    async def scenario() -> None:
        async with AsyncEventReader(queue_url) as reader:
            with pytest.raises(ValueError, match="limit"):
                await reader.fetch(limit=0)
            with pytest.raises(ValueError, match="since"):
                await reader.fetch(WebhookFilter(since=datetime(2026, 1, 1)))
            with pytest.raises(ValueError, match="timeout"):
                await reader.wait_for_insert(-1)

    run(scenario)


def test_reader_creates_the_schema_of_a_new_queue(tmp_path: Path) -> None:
    async def scenario() -> int:
        async with AsyncEventReader(f"sqlite:///{tmp_path / 'new.db'}") as reader:
            return await reader.head_id()

    assert run(scenario) == 0
    raw = sqlite3.connect(tmp_path / "new.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_readers_in_one_loop_share_one_engine(queue_url: str) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        readers = [AsyncEventReader(queue_url) for _ in range(5)]
        await asyncio.gather(*(r.head_id() for r in readers))
        engines = {id(r._shared.engine) for r in readers if r._shared is not None}
        assert len(engines) == 1
        assert len(reader_module._engines[loop]) == 1
        for r in readers:
            await r.close()
        assert reader_module._engines[loop] == {}  # the last reader out disposed it
        with pytest.raises(RuntimeError, match="closed"):
            await readers[0].fetch()

    run(scenario)


def test_sqlite_wait_for_insert_sleeps_and_returns_false(tmp_path: Path) -> None:
    async def scenario() -> tuple[bool, float]:
        async with AsyncEventReader(f"sqlite:///{tmp_path / 'q.db'}") as reader:
            started = time.monotonic()
            rang = await reader.wait_for_insert(0.2)
            return rang, time.monotonic() - started

    rang, waited = run(scenario)
    # The lower bound shows it slept; the upper one only that it returned (a loaded CI host is slow).
    assert rang is False and 0.19 < waited < 5


@pytest.mark.postgres
def test_postgres_wait_for_insert_wakes_on_commit(postgres_url: str) -> None:
    writer = EventQueue(postgres_url)
    writer.head_id()

    async def scenario() -> None:
        async with AsyncEventReader(postgres_url) as reader:
            # The channel rings once when it opens (commits before that were not announced).
            assert await reader.wait_for_insert(10) is True
            assert await reader.wait_for_insert(0.2) is False  # nothing happened since
            waiting = asyncio.create_task(reader.wait_for_insert(10))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            event_id, _ = await asyncio.to_thread(writer.append, make_event(), dedupe_window_seconds=60)
            assert await waiting is True
            assert time.monotonic() - started < 5  # woken by the commit, well before its 10 s
            assert [e.id for e in await reader.fetch()] == [event_id]
            # A duplicate stores nothing, and rings nothing.
            await asyncio.to_thread(writer.append, make_event(dedupe_key="d"), dedupe_window_seconds=60)
            assert await reader.wait_for_insert(2) is True
            await asyncio.to_thread(writer.append, make_event(dedupe_key="d"), dedupe_window_seconds=60)
            assert await reader.wait_for_insert(0.3) is False

    run(scenario)
    writer.close()


@pytest.mark.postgres
def test_postgres_readers_share_one_listening_connection(postgres_url: str) -> None:
    import psycopg

    writer = EventQueue(postgres_url)
    writer.head_id()
    name = postgres_url.rsplit("/", 1)[1]

    def listeners() -> int:
        admin = os.environ["ITERABLE_TEST_POSTGRES_URL"].replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                (name, "airflow-provider-iterable-listener"),
            ).fetchone()
            return int(row[0]) if row else 0

    async def scenario() -> None:
        readers = [AsyncEventReader(postgres_url) for _ in range(8)]
        # The first wait of each ends when the shared channel opens and rings.
        assert await asyncio.gather(*(r.wait_for_insert(10) for r in readers)) == [True] * 8
        assert await asyncio.to_thread(listeners) == 1
        waits = [asyncio.create_task(r.wait_for_insert(10)) for r in readers]
        await asyncio.sleep(0.1)
        await asyncio.to_thread(writer.append, make_event(), dedupe_window_seconds=60)
        assert await asyncio.gather(*waits) == [True] * 8
        # A ring that came between two waits is not lost: the next wait returns at once.
        await asyncio.to_thread(writer.append, make_event(), dedupe_window_seconds=60)
        await asyncio.sleep(0.3)
        started = time.monotonic()
        assert await readers[0].wait_for_insert(10) is True
        assert time.monotonic() - started < 5  # at once, not after its 10 s
        for r in readers:
            await r.close()
        await asyncio.sleep(0.2)
        assert await asyncio.to_thread(listeners) == 0  # closed with the last reader

    run(scenario)
    writer.close()


# -- the event loop is never blocked --------------------------------------------------------


def _loop_stays_responsive(url: str, caplog: pytest.LogCaptureFixture, *, readers: int, rounds: int) -> float:
    """Poll a big queue from many readers while a writer holds the lock; return the worst loop stall.

    Runs the loop in asyncio debug mode with Airflow's threshold (0.2 s): any callback that
    runs longer is logged by asyncio and fails the test.
    """
    path = url.removeprefix("sqlite:///")
    head = EventQueue(url).head_id()
    release = threading.Event()

    def hold_write_lock() -> None:
        holder = sqlite3.connect(path, isolation_level=None, timeout=30)
        holder.execute("BEGIN IMMEDIATE")
        release.wait(timeout=30)
        holder.execute("ROLLBACK")
        holder.close()

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        loop.slow_callback_duration = 0.2
        worst = 0.0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal worst
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                worst = max(worst, now - last - 0.01)
                last = now

        async def poll(reader: AsyncEventReader, n: int) -> None:
            since = datetime(2026, 1, 1, 6, tzinfo=timezone.utc)
            for i in range(rounds):
                # What triggers ask: nothing matching from far back, the newest rows, a window.
                assert (
                    await reader.fetch(WebhookFilter(conn_id="iterable_default", event_name="noSuchEvent"))
                    == []
                )
                assert (
                    await reader.fetch(
                        WebhookFilter(conn_id="iterable_default", kind="journey", event_name="x")
                    )
                    == []
                )
                assert await reader.fetch(WebhookFilter(workflow_id=424242)) == []
                page = await reader.fetch(
                    WebhookFilter(conn_id="iterable_default", event_name="emailOpen"), after_id=head - 50
                )
                assert len(page) == 10
                opened_since = WebhookFilter(since=since, event_name="emailOpen")
                assert len(await reader.fetch(opened_since, limit=100)) == 100
                assert await reader.head_id() == head
                if i == 0:
                    await reader.set_cursor(f"watcher-{n}", head)

        tick = asyncio.create_task(ticker())
        holder = threading.Thread(target=hold_write_lock)
        holder.start()
        pool = [AsyncEventReader(url) for _ in range(readers)]
        try:
            # The cursors wait for the held write lock (in the driver's thread) while reads go on.
            polls = asyncio.gather(*(poll(r, n) for n, r in enumerate(pool)))
            await asyncio.sleep(0.5)
            release.set()
            await polls
        finally:
            release.set()
            stop.set()
            await tick
            for r in pool:
                await r.close()
            await asyncio.to_thread(holder.join, 30)
        return worst

    # A stall is measured in wall-clock time, so on a shared machine a descheduled process can
    # look like a blocking call. A real blocking call stalls again in the same place: only a
    # stall seen in two runs in a row fails the test.
    # The test process holds the heap of every test that ran before this one; a full garbage
    # collection over it pauses whichever thread triggers it for hundreds of milliseconds,
    # which is the test runner's cost, not the reader's. Freeze that heap out of collections.
    gc.collect()
    gc.freeze()
    for attempt in (1, 2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            worst = asyncio.run(scenario(), debug=True)
        slow = [r.getMessage() for r in caplog.records if r.name == "asyncio" and "took" in r.getMessage()]
        if attempt == 2 or (not slow and worst < 0.2):
            break
        release.clear()
    gc.unfreeze()
    assert slow == []
    assert worst < 0.2
    return worst


def test_polling_a_large_queue_never_blocks_the_loop(
    large_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    _loop_stays_responsive(large_queue, caplog, readers=10, rounds=3)


@pytest.mark.slow
def test_polling_a_million_row_queue_never_blocks_the_loop(
    million_row_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    _loop_stays_responsive(million_row_queue, caplog, readers=20, rounds=5)


@pytest.mark.slow
def test_polls_of_a_million_row_queue_cost_what_they_return(million_row_queue: str) -> None:
    """A filter that matches nothing stays an index lookup, not a scan of a million rows."""

    async def scenario() -> dict[str, float]:
        timings: dict[str, float] = {}
        async with AsyncEventReader(million_row_queue) as reader:
            head = await reader.head_id()
            assert head == 1_000_000
            cases: dict[str, tuple[WebhookFilter, int]] = {
                "no match by name": (WebhookFilter(conn_id="iterable_default", event_name="noSuchEvent"), 0),
                "no match by kind and name": (
                    WebhookFilter(conn_id="iterable_default", kind="journey", event_name="x"),
                    0,
                ),
                "no match by journey": (WebhookFilter(workflow_id=424242), 0),
                "new rows after the cursor": (WebhookFilter(conn_id="iterable_default"), head - 100),
                "window of the last hour": (
                    WebhookFilter(
                        since=datetime(2026, 1, 12, 12, 46, tzinfo=timezone.utc),
                        conn_id="iterable_default",
                        event_name="noSuchEvent",
                    ),
                    0,
                ),
            }
            # The baseline: an unknown connection read from the start walks the whole table.
            cases["baseline: full scan"] = (WebhookFilter(conn_id="unknown-connection"), 0)
            for name, (where, after_id) in cases.items():
                assert (
                    await reader.fetch(where, after_id=after_id) == [] or "after" in name
                )  # warms the cache
                started = time.perf_counter()
                for _ in range(5):
                    await reader.fetch(where, after_id=after_id)
                timings[name] = (time.perf_counter() - started) / 5
        return timings

    timings = asyncio.run(scenario())
    scan = timings.pop("baseline: full scan")
    # Measured in the same run, so the ratio holds on a slow or busy machine.
    assert max(timings.values()) < scan / 5, (scan, timings)
