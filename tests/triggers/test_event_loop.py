"""R11: the trigger never blocks the triggerer's event loop.

asyncio debug mode reports every callback that runs longer than ``slow_callback_duration``
(0.2 s, the triggerer's own warning threshold). A queue of a million rows, a writer holding the
SQLite write lock for seconds at a time, and over a hundred waiting triggers (shared-stream sensors,
standalone sensors scanning history, watchers writing cursors) must not produce one report.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import shutil
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_iterable.event_queue import EventQueue
from airflow_provider_iterable.triggers import IterableWebhookTrigger
from tests.event_queue.conftest import build_sqlite_queue
from tests.triggers.helpers import InMemoryAssetStore, SharedStreamDriver, new_event, wait_until

ROWS = 1_000_000
#: Before every row build_sqlite_queue writes (they start on 2026-01-01, one second apart).
BEFORE_HISTORY = datetime(2025, 12, 31, tzinfo=timezone.utc).isoformat()
#: Sensors sharing one poll. In debug mode asyncio records a stack for every callback it
#: schedules, which makes one event's fan-out cost ~1 ms per waiting sensor; 100 keeps that
#: debug-only overhead well under the threshold (bench/wait.py measures 1,000 without it).
SHARED_SENSORS = 100


class SlowCallbacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Executing" in message and "took" in message:
            self.reports.append(message)


def hold_write_lock(path: Path, stop: threading.Event, held: list[float]) -> None:
    """Take SQLite's write lock for 2 s at a time (a stuck receiver), again and again."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            held.append(2.0)
            stop.wait(2.0)
            conn.execute("ROLLBACK")
            stop.wait(0.3)
    finally:
        conn.close()


def run_scenario(path: Path) -> tuple[list[str], list[float]]:
    """Wait with hundreds of triggers on the queue at ``path``; return the slow-callback reports."""
    url = f"sqlite:///{path}"
    queue = EventQueue(url, busy_timeout=30)
    slow = SlowCallbacks()
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(slow)
    stop = threading.Event()
    held: list[float] = []
    locker = threading.Thread(target=hold_write_lock, args=(path, stop, held), daemon=True)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.slow_callback_duration = 0.2
        driver = SharedStreamDriver()
        since = datetime.now(timezone.utc).isoformat()
        standalone: list[asyncio.Task[object]] = []

        async def first(trigger: IterableWebhookTrigger) -> object:
            gen = trigger.run()
            try:
                return await gen.__anext__()
            finally:
                await gen.aclose()

        try:
            locker.start()
            sensors = {
                i: driver.start(
                    IterableWebhookTrigger(queue_url=url, since=since, match={"email": f"s{i}@x"})
                )
                for i in range(SHARED_SENSORS)
            }
            watchers = []
            consumers = []
            for i in range(2):
                watcher = IterableWebhookTrigger(queue_url=url, event_name=f"watched{i}")
                watcher.asset_state_store = InMemoryAssetStore()
                consumers.append(watcher.consumer_name)
                watchers.append(driver.start(watcher))
            # Standalone sensors whose window spans the whole history (a million rows).
            for i in range(10):
                trigger = IterableWebhookTrigger(queue_url=url, since=BEFORE_HISTORY, event_name=f"late{i}")
                standalone.append(asyncio.create_task(first(trigger)))
            standalone_watcher = IterableWebhookTrigger(
                queue_url=url, event_name="watched0", mode="watcher", consumer="r11-standalone"
            )
            consumers.append("r11-standalone")
            standalone.append(asyncio.create_task(first(standalone_watcher)))
            # Watchers start at the head: wait until each has taken its position.
            for _ in range(600):
                positions = await asyncio.to_thread(lambda: [queue.get_cursor(c) for c in consumers])
                if None not in positions:
                    break
                await asyncio.sleep(0.1)
            assert None not in positions

            for i in range(0, SHARED_SENSORS, 10):
                await asyncio.to_thread(queue.append, new_event(email=f"s{i}@x"))
            for i in range(10):
                await asyncio.to_thread(queue.append, new_event(event_name=f"late{i}"))
            await asyncio.to_thread(queue.append, new_event(event_name="watched0"))
            await asyncio.to_thread(queue.append, new_event(event_name="watched1"))
            targeted = range(0, SHARED_SENSORS, 10)
            assert await wait_until(lambda: all(driver.events[sensors[i]] for i in targeted), 60)
            assert await wait_until(lambda: all(t.done() for t in standalone), 60), [
                i for i, t in enumerate(standalone) if not t.done()
            ]
            assert await wait_until(lambda: all(driver.events[w] for w in watchers), 30)
            assert not any(driver.events[sensors[i]] for i in range(1, SHARED_SENSORS, 10))
            await asyncio.sleep(3)  # idle with everyone still waiting, the lock still cycling
        finally:
            stop.set()
            for task in standalone:
                task.cancel()
            await asyncio.gather(*standalone, return_exceptions=True)
            await driver.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 300), debug=True)
    finally:
        stop.set()
        locker.join(timeout=10)
        asyncio_log.removeHandler(slow)
        queue.close()
    return slow.reports, held


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_r11_no_callback_blocks_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with EventQueue(build_sqlite_queue(path, ROWS)) as queue:
        assert queue.head_id() == ROWS
    pristine = tmp_path / "pristine.db"
    shutil.copyfile(path, pristine)
    # The test process holds the heap of every test that ran before this one; a full garbage
    # collection over it pauses the loop for hundreds of milliseconds, which is the test
    # runner's cost, not the trigger's. Freeze that heap out of collections.
    gc.collect()
    gc.freeze()
    try:
        reports, held = run_scenario(path)
        if reports:
            # Stalls are measured in wall-clock time, so on a shared machine a descheduled process
            # can look like a blocking call; a real blocking call stalls again in a second run,
            # made on a fresh copy of the same million rows.
            again = tmp_path / "again.db"
            shutil.copyfile(pristine, again)
            reports, held = run_scenario(again)
    finally:
        gc.unfreeze()
    assert len(held) >= 3  # the writer really held the lock during the run
    assert reports == []
