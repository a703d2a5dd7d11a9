"""How the queue connects to each backend: engines, pools and the SQLite settings durability needs.

SQLite: WAL with ``synchronous=FULL`` on every connection (checked, not assumed), the driver's own
transaction handling off so the queue begins each transaction itself (``BEGIN IMMEDIATE`` for
writes), and a busy timeout. PostgreSQL: connect and lock timeouts, and an application name that
shows in ``pg_stat_activity``.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from airflow_provider_iterable.event_queue.errors import sqlite_lock_error
from airflow_provider_iterable.event_queue.schema import async_url
from airflow_provider_iterable.exceptions import QueueUnavailableError

#: The PRAGMA values the SQLite queue requires (R1): ``synchronous=FULL`` reads back as 2.
SQLITE_JOURNAL_MODE = "wal"
SQLITE_SYNCHRONOUS_FULL = 2


def sqlite_on_connect(dbapi_connection: Any, busy_timeout: float) -> None:
    """Configure one SQLite connection and check that the settings took effect.

    The driver's own transaction handling is switched off so the queue decides how each
    transaction begins (``BEGIN IMMEDIATE`` for writes: a deferred transaction that later writes
    fails at once with ``SQLITE_BUSY`` instead of waiting for the lock).

    :param dbapi_connection: The ``sqlite3`` (or aiosqlite adapted) connection.
    :param busy_timeout: Seconds to wait for another writer's lock before failing.
    :raises QueueUnavailableError: when WAL or ``synchronous=FULL`` cannot be set (e.g. a
        filesystem without shared memory support).
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        journal_mode = _set_wal(cursor, busy_timeout)
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA synchronous")
        synchronous = int(cursor.fetchone()[0])
    finally:
        cursor.close()
    if journal_mode != SQLITE_JOURNAL_MODE or synchronous != SQLITE_SYNCHRONOUS_FULL:
        raise QueueUnavailableError(
            "the SQLite event queue must run with journal_mode=wal and synchronous=FULL (2), "
            f"got journal_mode={journal_mode} synchronous={synchronous}"
        )


def _set_wal(cursor: Any, busy_timeout: float) -> str:
    """Switch the file to WAL and return the journal mode SQLite reports.

    While several processes open a new queue file at once, the switch (which needs a moment of
    exclusive access) can answer "database is locked" without waiting for the busy timeout:
    retry it for as long as that timeout allows.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return str(cursor.fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if not sqlite_lock_error(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def sqlite_on_begin(conn: Connection) -> None:
    """Begin a SQLite transaction, ``IMMEDIATE`` when the connection is marked for writing."""
    mode = conn.get_execution_options().get("iterable_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def read_sqlite_settings(engine: Engine) -> dict[str, Any]:
    """Return the PRAGMAs that matter for durability, as read back from a live connection."""
    with engine.connect() as conn:
        return {
            "journal_mode": str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower(),
            "synchronous": int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0),
            "busy_timeout_ms": int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0),
        }


def queue_engine(url: str, *, busy_timeout: float, pre_ping: bool, pool_size: int = 5) -> Engine:
    """Create the synchronous engine of :class:`~airflow_provider_iterable.event_queue.EventQueue`.

    :param url: A normalised queue URL.
    :param busy_timeout: Seconds a write waits for another writer's lock (SQLite busy timeout,
        PostgreSQL ``lock_timeout``); also bounds connecting and waiting for a pooled connection.
    :param pre_ping: Check a pooled PostgreSQL connection before handing it out.
    :param pool_size: Connections kept open (PostgreSQL; SQLite always keeps 5).
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": busy_timeout, "check_same_thread": False},
            pool_size=5,
            max_overflow=20,
            pool_timeout=busy_timeout * 2,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            sqlite_on_connect(dbapi_connection, busy_timeout)

        event.listen(engine, "begin", sqlite_on_begin)
        return engine
    lock_ms = int(busy_timeout * 1000)
    return create_engine(
        url,
        connect_args={
            "connect_timeout": max(1, int(busy_timeout)),
            "options": f"-c lock_timeout={lock_ms}",
            "application_name": "airflow-provider-iterable",
        },
        pool_pre_ping=pre_ping,
        pool_size=pool_size,
        max_overflow=20,
        pool_timeout=busy_timeout * 2,
    )


def reader_engine(url: str, *, busy_timeout: float) -> AsyncEngine:
    """Create the asyncio engine all readers of one queue in one event loop share.

    Small on purpose: a thousand waiting sensors read through one shared poll, not a pool each.

    :param url: A normalised queue URL (the async driver is chosen here).
    :param busy_timeout: Seconds a reader's write (a cursor) waits for the write lock.
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(
            async_url(url),
            connect_args={"timeout": busy_timeout},
            pool_size=2,
            max_overflow=3,
            pool_timeout=30,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            sqlite_on_connect(dbapi_connection, busy_timeout)

        event.listen(engine.sync_engine, "begin", sqlite_on_begin)
        return engine
    return create_async_engine(
        async_url(url),
        connect_args={
            "connect_timeout": 10,
            "options": f"-c lock_timeout={int(busy_timeout * 1000)}",
            "application_name": "airflow-provider-iterable-reader",
        },
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=3,
        pool_timeout=30,
    )


__all__ = [
    "SQLITE_JOURNAL_MODE",
    "SQLITE_SYNCHRONOUS_FULL",
    "queue_engine",
    "read_sqlite_settings",
    "reader_engine",
    "sqlite_on_begin",
    "sqlite_on_connect",
]
