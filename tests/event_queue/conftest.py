"""Fixtures for the event queue tests: one queue per backend, events, and a large SQLite file."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_iterable.event_queue import EventQueue, NewEvent

_counter = itertools.count(1)


def make_event(
    *,
    conn_id: str = "iterable_default",
    kind: str = "system",
    event_name: str | None = "emailSend",
    workflow_id: int | None = None,
    campaign_id: int | None = 1001,
    email: str | None = "ada@example.com",
    user_id: str | None = None,
    payload: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> NewEvent:
    """Return a distinct event (its own dedupe key) unless ``dedupe_key`` says otherwise."""
    n = next(_counter)
    if payload is None:
        payload = {"email": email, "eventName": event_name, "dataFields": {"campaignId": campaign_id, "n": n}}
    return NewEvent(
        conn_id=conn_id,
        kind=kind,
        payload=payload,
        query=query or {},
        event_name=event_name,
        workflow_id=workflow_id,
        campaign_id=campaign_id,
        email=email,
        user_id=user_id,
        dedupe_key=dedupe_key or f"key-{n:08d}",
    )


class Clock:
    """A settable clock for the queue (``received_at``, dedupe window, retention)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty queue: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(queue_url: str, clock: Clock) -> Iterator[EventQueue]:
    """An :class:`EventQueue` on ``queue_url`` with an injected clock."""
    q = EventQueue(queue_url, busy_timeout=2.0, clock=clock)
    yield q
    q.close()


@pytest.fixture
def event_factory() -> Callable[..., NewEvent]:
    return make_event


def build_sqlite_queue(path: Path, rows: int, *, conn_id: str = "iterable_default") -> str:
    """Write ``rows`` events straight into a new SQLite queue file; return its URL.

    The schema comes from :class:`EventQueue` (so the file is what the product creates); the
    rows go in with one ``executemany`` and no fsync, which builds a million rows in seconds.
    Event names cycle through five system events; received_at is one second apart.
    """
    url = f"sqlite:///{path}"
    queue = EventQueue(url)
    queue.head_id()
    queue.close()
    names = ["emailSend", "emailOpen", "emailClick", "smsSend", "emailBounce"]
    base = datetime(2026, 1, 1)

    def generate() -> Iterator[tuple[Any, ...]]:
        for i in range(rows):
            name = names[i % 5]
            email = f"user{i}@example.com"
            payload = {"email": email, "eventName": name, "dataFields": {"campaignId": 1000 + i % 7}}
            yield (
                (base + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f"),
                conn_id,
                "system",
                name,
                None,
                1000 + i % 7,
                email,
                None,
                f"bulk-{i}",
                json.dumps(payload),
                "{}",
            )

    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.executemany(
            "INSERT INTO iterable_events (received_at, conn_id, kind, event_name, workflow_id, "
            "campaign_id, email, user_id, dedupe_key, payload, query) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            generate(),
        )
        conn.commit()
    finally:
        conn.close()
    return url


@pytest.fixture(scope="session")
def million_row_queue(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite queue of 1,000,000 events (about 350 MB, ~15 s to build): use only in slow tests."""
    return build_sqlite_queue(tmp_path_factory.mktemp("big") / "queue.db", 1_000_000)


@pytest.fixture(scope="session")
def large_queue(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite queue of 50,000 events, for the quick run."""
    return build_sqlite_queue(tmp_path_factory.mktemp("large") / "queue.db", 50_000)
