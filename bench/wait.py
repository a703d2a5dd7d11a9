"""P4 and P5: how fast a deferred sensor wakes, and what waiting costs.

P4, wake-up latency: sensors wait in one event loop on the triggerer's shared-stream path
(Airflow's ``SharedStreamManager``, as the triggerer runs them; each trigger built as the webhook
sensors build theirs: ``mode="sensor"`` and a deadline, one hour ahead); a writer thread commits one
matching event at a random moment; the latency is from the moment the commit returned to the
moment the sensor's trigger yields the event. SQLite always; PostgreSQL (with its ``NOTIFY``
doorbell) when ``ITERABLE_TEST_POSTGRES_URL`` names a server where a database may be created.

P5, cost of waiting: 1, 100 and 1,000 sensors wait, idle, in one event loop; the figures are the
queue queries per second (every SQL statement any engine in the process executes, a read
transaction's ``BEGIN`` included: two per poll on SQLite) and the
process CPU time per wall second. One shared poll serves them all, so neither may grow with the
number waiting; the baseline is one waiting sensor, measured in the same run. For contrast, 100
sensors each polling on their own (``run()``, as under ``dag.test()``) are measured too.

Usage::

    python bench/wait.py            # short mode
    python bench/wait.py --full
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Hashable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from airflow_provider_iterable.event_queue import EventQueue, NewEvent  # noqa: E402
from airflow_provider_iterable.triggers import IterableWebhookTrigger  # noqa: E402

POSTGRES_ENV = "ITERABLE_TEST_POSTGRES_URL"


class StatementCounter:
    """Count every SQL statement executed by any SQLAlchemy engine in this process."""

    def __init__(self) -> None:
        self.count = 0
        event.listen(Engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, *_args: Any, **_kwargs: Any) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(Engine, "before_cursor_execute", self._on_execute)


def make_event(email: str) -> NewEvent:
    return NewEvent(
        conn_id="iterable_default",
        kind="system",
        payload={"email": email, "eventName": "emailOpen", "dataFields": {"n": uuid.uuid4().hex}},
        query={},
        event_name="emailOpen",
        workflow_id=None,
        campaign_id=None,
        email=email,
        user_id=None,
        dedupe_key=uuid.uuid4().hex,
    )


class Triggerer:
    """The part of Airflow's trigger runner that drives shared-stream triggers, in one loop."""

    def __init__(self) -> None:
        from airflow.triggers.shared_stream import SharedStreamManager

        self.manager = SharedStreamManager()
        self.tasks: list[asyncio.Task[None]] = []
        self._ids = iter(range(1, 10**9))

    def start(self, trigger: IterableWebhookTrigger, on_event: Any) -> None:
        trigger_id = next(self._ids)

        async def run() -> None:
            key: Hashable = trigger.shared_stream_key()
            stream = self.manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
            try:
                async for fired in trigger.filter_shared_stream(stream):
                    on_event(fired)
            finally:
                await self.manager.unsubscribe(trigger_id, key)

        self.tasks.append(asyncio.create_task(run()))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.manager.stop_all()


def sensor_trigger(url: str, since: str, email: str) -> IterableWebhookTrigger:
    """Build the trigger a webhook sensor defers to (window, sensor mode, deadline)."""
    deadline = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    return IterableWebhookTrigger(
        queue_url=url, since=since, match={"email": email}, mode="sensor", deadline=deadline
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# -- P4 ------------------------------------------------------------------------------------------


async def _latency(url: str, waiting: int, events: int) -> list[float]:
    queue = EventQueue(url)
    queue.head_id()
    triggerer = Triggerer()
    since = datetime.now(timezone.utc).isoformat()
    woke: dict[str, float] = {}

    def on_event(fired: Any) -> None:
        woke[fired.payload["event"]["email"]] = time.perf_counter()

    try:
        for i in range(waiting):  # others waiting alongside, never matched
            triggerer.start(sensor_trigger(url, since, f"idle{i}@x"), on_event)
        targets = [f"target{i}@x" for i in range(events)]
        for email in targets:
            triggerer.start(sensor_trigger(url, since, email), on_event)
        await asyncio.sleep(2.0)  # every sensor has scanned its window and joined the shared poll
        latencies = []
        for email in targets:
            await asyncio.sleep(random.uniform(0.05, 0.4))  # land anywhere in the poll cycle
            await asyncio.to_thread(queue.append, make_event(email))
            committed = time.perf_counter()
            deadline = committed + 10
            while email not in woke and time.perf_counter() < deadline:
                await asyncio.sleep(0.002)
            if email not in woke:
                raise RuntimeError(f"no wake-up within 10 s for {email}")
            latencies.append(woke[email] - committed)
        return latencies
    finally:
        await triggerer.close()
        queue.close()


def measure_latency(url: str, *, waiting: int, events: int) -> list[float]:
    return asyncio.run(_latency(url, waiting, events))


# -- P5 ------------------------------------------------------------------------------------------


async def _idle_cost(
    url: str, waiting: int, seconds: float, shared: bool, counter: StatementCounter
) -> dict[str, float]:
    EventQueue(url).head_id()
    triggerer = Triggerer()
    standalone: list[asyncio.Task[None]] = []
    since = datetime.now(timezone.utc).isoformat()

    async def run_alone(trigger: IterableWebhookTrigger) -> None:
        async for _fired in trigger.run():
            return

    try:
        for i in range(waiting):
            trigger = sensor_trigger(url, since, f"idle{i}@x")
            if shared:
                triggerer.start(trigger, lambda _fired: None)
            else:
                standalone.append(asyncio.create_task(run_alone(trigger)))
        await asyncio.sleep(3.0 + waiting / 500)  # start-up (window scans) is not idle time
        statements, cpu, wall = counter.count, time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        statements, cpu, wall = (
            counter.count - statements,
            time.process_time() - cpu,
            time.perf_counter() - wall,
        )
        return {"queries_per_s": statements / wall, "cpu_share": cpu / wall}
    finally:
        for task in standalone:
            task.cancel()
        await asyncio.gather(*standalone, return_exceptions=True)
        await triggerer.close()


def measure_idle_cost(url: str, *, waiting: int, seconds: float, shared: bool = True) -> dict[str, float]:
    counter = StatementCounter()
    try:
        return asyncio.run(_idle_cost(url, waiting, seconds, shared, counter))
    finally:
        counter.close()


# -- the run -------------------------------------------------------------------------------------


def _postgres_database() -> tuple[str, Any] | None:
    admin = os.environ.get(POSTGRES_ENV)
    if not admin:
        return None
    import psycopg

    name = f"iterable_bench_{uuid.uuid4().hex[:10]}"
    libpq = admin.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        return None

    def drop() -> None:
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}", drop


def _latency_rows(backend: str, latencies: list[float], waiting: int) -> list[dict[str, Any]]:
    p50, p99 = statistics.median(latencies) * 1000, percentile(latencies, 0.99) * 1000
    note = f"{backend}, {len(latencies)} events, {waiting + len(latencies)} sensors waiting"
    return [
        {
            "id": "P4",
            "figure": f"wake-up latency p50 ({note})",
            "value": round(p50, 1),
            "unit": "ms",
            "goal": "< 250 ms" if backend == "SQLite" else "< 250 ms (lower with NOTIFY)",
            "met": p50 < 250,
        },
        {
            "id": "P4",
            "figure": f"wake-up latency p99 ({note})",
            "value": round(p99, 1),
            "unit": "ms",
            "goal": "< 1000 ms",
            "met": p99 < 1000,
        },
    ]


def run(short: bool = True) -> list[dict[str, Any]]:
    """Measure P4 and P5; return one dict per table row (see bench/README.md).

    :param short: 40 wake-ups and 10 s idle windows (about two minutes); otherwise 200 and 30 s.
    """
    events, idle_seconds, waiting = (40, 10.0, 100) if short else (200, 30.0, 1000)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="iterable-bench-wait-") as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'latency.db'}"
        rows += _latency_rows("SQLite", measure_latency(sqlite_url, waiting=waiting, events=events), waiting)
        postgres = _postgres_database()
        if postgres is not None:
            pg_url, drop = postgres
            try:
                rows += _latency_rows(
                    "PostgreSQL", measure_latency(pg_url, waiting=waiting, events=events), waiting
                )
            finally:
                drop()

        costs = {}
        for count in (1, 100, 1000):
            url = f"sqlite:///{Path(tmp) / f'idle_{count}.db'}"
            costs[count] = measure_idle_cost(url, waiting=count, seconds=idle_seconds)
        alone_url = f"sqlite:///{Path(tmp) / 'idle_alone.db'}"
        alone = measure_idle_cost(alone_url, waiting=100, seconds=idle_seconds, shared=False)

    base = costs[1]
    for count in (1, 100, 1000):
        cost = costs[count]
        rows.append(
            {
                "id": "P5",
                "figure": f"idle SQL statements/s, {count} sensor(s) waiting (shared poll)",
                "value": round(cost["queries_per_s"], 2),
                "unit": "statements/s",
                "baseline": round(base["queries_per_s"], 2),
                "ratio": round(cost["queries_per_s"] / base["queries_per_s"], 2)
                if base["queries_per_s"]
                else None,
                "goal": "flat (ratio ≈ 1)",
                "met": cost["queries_per_s"] <= base["queries_per_s"] * 1.5 + 1,
            }
        )
        rows.append(
            {
                "id": "P5",
                "figure": f"idle CPU, {count} sensor(s) waiting (shared poll)",
                "value": round(cost["cpu_share"] * 100, 2),
                "unit": "% of a core",
                "baseline": round(base["cpu_share"] * 100, 2),
                "ratio": round(cost["cpu_share"] / base["cpu_share"], 2) if base["cpu_share"] else None,
                "goal": "< 5 % at 1,000, flat",
                "met": cost["cpu_share"] < 0.05,
            }
        )
    rows.append(
        {
            "id": "P5",
            "figure": "contrast: idle SQL statements/s, 100 sensors each polling alone (run())",
            "value": round(alone["queries_per_s"], 2),
            "unit": "statements/s",
            "baseline": round(costs[100]["queries_per_s"], 2),
            "goal": "(not a goal: what sharing saves)",
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="full-size run (1,000 waiting, longer windows)")
    args = parser.parse_args()
    rows = run(short=not args.full)
    width = max(len(str(row["figure"])) for row in rows)
    for row in rows:
        baseline = f"  (baseline {row['baseline']})" if row.get("baseline") is not None else ""
        value = f"{row['value']} {row.get('unit', '')}"
        print(f"{row['id']}  {row['figure']:<{width}}  {value}{baseline}  {row.get('goal', '')}")


if __name__ == "__main__":
    main()
