"""A broken store raises QueueUnavailableError, stores nothing, and recovers (R7 at the queue level)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event

from airflow_provider_iterable.event_queue import AsyncEventReader, EventQueue, QueueUnavailableError
from airflow_provider_iterable.event_queue.schema import PG_WRITE_LOCK_KEY
from tests.event_queue.conftest import make_event


def _count(url: str) -> int:
    queue = EventQueue(url)
    try:
        return len(queue.fetch(limit=10_000))
    finally:
        queue.close()


# -- SQLite ---------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"


def test_lock_held_past_the_busy_timeout_is_unavailable_then_recovers(sqlite_url: str) -> None:
    queue = EventQueue(sqlite_url, busy_timeout=0.3)
    first, _ = queue.append(make_event(), dedupe_window_seconds=60)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's writer, stuck
    try:
        started = time.monotonic()
        with pytest.raises(QueueUnavailableError, match="locked"):
            queue.append(make_event(dedupe_key="retry-me"), dedupe_window_seconds=60)
        assert 0.25 < time.monotonic() - started < 5
        with pytest.raises(QueueUnavailableError):
            queue.append_many([make_event(), make_event()], dedupe_window_seconds=60)
        with pytest.raises(QueueUnavailableError):
            queue.ping()
        # WAL readers are not blocked by a writer.
        assert [e.id for e in queue.fetch()] == [first]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    queue.ping()
    resent, stored = queue.append(make_event(dedupe_key="retry-me"), dedupe_window_seconds=60)
    assert stored and resent > first
    assert _count(sqlite_url) == 2
    queue.close()


@contextmanager
def _read_only(paths: list[Path]) -> Iterator[None]:
    """Make files read-only even for root (immutable attribute), or by mode for other users.

    The ``-shm`` file is left alone: it is memory-mapped, and making it immutable would crash
    the process on its next write instead of returning an error.
    """
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make a file read-only")
        done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
    else:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)


def test_read_only_file_is_unavailable_then_recovers(sqlite_url: str) -> None:
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    queue = EventQueue(sqlite_url, busy_timeout=0.5)
    queue.append(make_event(), dedupe_window_seconds=60)
    with _read_only([path, Path(f"{path}-wal")]):
        # A queue already open, and one opened now (its connection opens the file read-only).
        fresh = EventQueue(sqlite_url, busy_timeout=0.5)
        for q in (queue, fresh):
            with pytest.raises(QueueUnavailableError):
                q.append(make_event(dedupe_key="during"), dedupe_window_seconds=60)
            with pytest.raises(QueueUnavailableError):
                q.ping()
    # Both recover: connections that saw the failure were discarded.
    assert queue.append(make_event(dedupe_key="during"), dedupe_window_seconds=60)[1] is True
    assert fresh.append(make_event(dedupe_key="during"), dedupe_window_seconds=60)[1] is False
    fresh.ping()
    assert _count(sqlite_url) == 2
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    queue.close()
    fresh.close()


def test_full_disk_stores_nothing_of_the_batch_then_recovers(sqlite_url: str) -> None:
    queue = EventQueue(sqlite_url, busy_timeout=0.5)
    queue.append(make_event(), dedupe_window_seconds=60)
    engine = queue._engine
    pages = sqlite3.connect(sqlite_url.removeprefix("sqlite:///")).execute("PRAGMA page_count").fetchone()[0]

    # SQLite answers SQLITE_FULL ("database or disk is full") when the file may not grow: the
    # same error, and the same code path, as a full filesystem.
    def cap_size(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 3}")

    event.listen(engine, "connect", cap_size)
    engine.dispose()
    big = [make_event(payload={"blob": "x" * 20_000, "i": i}) for i in range(50)]
    try:
        with pytest.raises(QueueUnavailableError, match="full"):
            queue.append_many(big, dedupe_window_seconds=60)
        assert _count(sqlite_url) == 1  # all or nothing
    finally:
        event.remove(engine, "connect", cap_size)
        engine.dispose()
    assert len(queue.append_many(big, dedupe_window_seconds=60)) == 50
    assert _count(sqlite_url) == 51
    queue.close()


def test_missing_directory_is_unavailable(tmp_path: Path) -> None:
    queue = EventQueue(f"sqlite:///{tmp_path / 'absent' / 'queue.db'}")
    with pytest.raises(QueueUnavailableError, match="unable to open"):
        queue.append(make_event(), dedupe_window_seconds=60)
    with pytest.raises(QueueUnavailableError):
        queue.ping()
    (tmp_path / "absent").mkdir()
    assert queue.append(make_event(), dedupe_window_seconds=60)[1] is True
    queue.close()


def test_async_reader_reports_an_unreadable_queue_then_recovers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'absent' / 'queue.db'}"

    async def scenario() -> None:
        reader = AsyncEventReader(url)
        with pytest.raises(QueueUnavailableError):
            await reader.fetch()
        with pytest.raises(QueueUnavailableError):
            await reader.head_id()
        (tmp_path / "absent").mkdir()
        assert await reader.head_id() == 0
        await reader.close()

    asyncio.run(scenario())


# -- PostgreSQL -----------------------------------------------------------------------------


_TERMINATE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
)


def _admin(postgres_url: str) -> psycopg.Connection[Any]:
    base = os.environ["ITERABLE_TEST_POSTGRES_URL"].replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(base, autocommit=True)


@contextmanager
def _database_down(postgres_url: str) -> Iterator[None]:
    """Refuse new connections to the test database and cut the open ones, as a server restart does."""
    name = postgres_url.rsplit("/", 1)[1]
    with _admin(postgres_url) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(_TERMINATE, (name,))
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.mark.postgres
def test_postgres_down_is_unavailable_then_recovers(postgres_url: str) -> None:
    queue = EventQueue(postgres_url, busy_timeout=2)
    first, _ = queue.append(make_event(), dedupe_window_seconds=60)
    with _database_down(postgres_url):
        with pytest.raises(QueueUnavailableError):
            queue.append(make_event(dedupe_key="retry-me"), dedupe_window_seconds=60)
        with pytest.raises(QueueUnavailableError):
            queue.append_many([make_event(), make_event()], dedupe_window_seconds=60)
        with pytest.raises(QueueUnavailableError):
            queue.ping()
        with pytest.raises(QueueUnavailableError):
            queue.fetch()
    queue.ping()
    resent, stored = queue.append(make_event(dedupe_key="retry-me"), dedupe_window_seconds=60)
    assert stored and resent > first
    assert [e.id for e in queue.fetch()] == [first, resent]
    queue.close()


@pytest.mark.postgres
def test_postgres_connections_cut_are_replaced_transparently(postgres_url: str) -> None:
    queue = EventQueue(postgres_url, busy_timeout=2)
    queue.append(make_event(), dedupe_window_seconds=60)
    name = postgres_url.rsplit("/", 1)[1]
    with _admin(postgres_url) as admin:
        admin.execute(_TERMINATE, (name,))
    # The pool notices the dead connection before using it (pre-ping) and opens a new one.
    assert queue.append(make_event(), dedupe_window_seconds=60)[1] is True
    assert len(queue.fetch()) == 2
    queue.close()


@pytest.mark.postgres
def test_postgres_writer_lock_held_past_the_timeout_stores_nothing(postgres_url: str) -> None:
    queue = EventQueue(postgres_url, busy_timeout=0.5)
    queue.head_id()
    holder = psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (PG_WRITE_LOCK_KEY,))
    try:
        with pytest.raises(QueueUnavailableError, match="lock"):
            queue.append_many([make_event(), make_event()], dedupe_window_seconds=60)
    finally:
        holder.execute("SELECT pg_advisory_unlock(%s)", (PG_WRITE_LOCK_KEY,))
        holder.close()
    assert queue.fetch() == []
    assert len(queue.append_many([make_event(), make_event()], dedupe_window_seconds=60)) == 2
    queue.close()


@pytest.mark.postgres
def test_async_reader_on_postgres_down_is_unavailable_then_recovers(postgres_url: str) -> None:
    writer = EventQueue(postgres_url)
    first, _ = writer.append(make_event(), dedupe_window_seconds=60)

    async def scenario() -> None:
        reader = AsyncEventReader(postgres_url)
        assert await reader.head_id() == first
        assert await reader.wait_for_insert(10) is True  # the channel opened
        assert await reader.wait_for_insert(0.2) is False  # nothing stored since
        with _database_down(postgres_url):
            with pytest.raises(QueueUnavailableError):
                await reader.fetch()
            # The doorbell degrades to a plain wait.
            started = time.monotonic()
            assert await reader.wait_for_insert(0.3) is False
            assert time.monotonic() - started >= 0.29
        assert [e.id for e in await reader.fetch()] == [first]
        # The doorbell comes back by itself and announces that it may have missed commits.
        assert await reader.wait_for_insert(10) is True
        second, _ = await asyncio.to_thread(writer.append, make_event(), dedupe_window_seconds=60)
        assert await reader.wait_for_insert(10) is True
        assert [e.id for e in await reader.fetch(after_id=first)] == [second]
        await reader.close()

    asyncio.run(scenario())
    writer.close()
