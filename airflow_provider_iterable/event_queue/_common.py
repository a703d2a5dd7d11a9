"""Pieces shared by the synchronous queue and the asynchronous reader.

Connection set-up per backend, the fetch query, argument checks, error translation and the
one-host notice for SQLite.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Select, and_, func, literal, select, union_all
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from airflow_provider_iterable.event_queue.events import KINDS, QueueUnavailableError, StoredEvent
from airflow_provider_iterable.event_queue.schema import consumers, events, safe_url, sqlite_path

log = logging.getLogger("airflow_provider_iterable.event_queue")

#: The largest page a single fetch returns.
MAX_FETCH_LIMIT = 10_000

#: The PRAGMA values the SQLite queue requires (R1): ``synchronous=FULL`` reads back as 2.
SQLITE_JOURNAL_MODE = "wal"
SQLITE_SYNCHRONOUS_FULL = 2

# Filesystem types on which SQLite's locking (and WAL's shared memory) is not reliable, or which
# suggest the file is shared between hosts.
_NETWORK_FS_PREFIXES = ("nfs", "cifs", "smb", "fuse", "9p", "ceph", "glusterfs", "afs", "lustre", "gpfs")

_notice_lock = threading.Lock()
_noticed: set[str] = set()

try:  # psycopg is an optional extra: only PostgreSQL deployments install it.
    import psycopg as _psycopg

    _DRIVER_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, _psycopg.Error)
except ImportError:  # pragma: no cover - the dev environment has psycopg
    _DRIVER_ERRORS = (sqlite3.Error,)

#: Everything that means "the store could not do it", turned into QueueUnavailableError.
STORAGE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError, *_DRIVER_ERRORS)


@contextmanager
def translate_errors(action: str, url: str) -> Iterator[None]:
    """Turn any storage failure inside the block into :class:`QueueUnavailableError`.

    :param action: What was being done, for the message (``"append"``, ``"fetch"``).
    :param url: The queue URL (its password is masked in the message).
    """
    try:
        yield
    except QueueUnavailableError:
        raise
    except STORAGE_ERRORS as exc:
        # The driver's message names the cause (locked, read-only, disk full, connection refused)
        # without data from the events; the URL's password is masked.
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = detail[0] if detail else type(exc).__name__
        raise QueueUnavailableError(
            f"event queue {safe_url(url)} unavailable ({action}): {type(exc).__name__}: {reason}"
        ) from exc


def discard(conn: Any) -> None:
    """Invalidate a connection after a storage error, so its pool opens a fresh one next time."""
    try:
        conn.invalidate()
    except Exception:  # already closed or invalidated: nothing left to discard
        log.debug("could not invalidate a failed queue connection", exc_info=True)


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
            if "locked" not in str(exc) or time.monotonic() >= deadline:
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


def _mount_fstype(path: str, mounts_file: str) -> str | None:
    """Return the filesystem type of the mount holding ``path``, from a ``/proc/mounts`` table."""
    try:
        with open(mounts_file, encoding="utf-8") as handle:
            mounts = [line.split() for line in handle]
    except OSError:
        return None
    target = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for fields in mounts:
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) > best[0]):
            best = (len(mount_point), fields[2])
    return best[1] if best else None


def network_filesystem(path: str, mounts_file: str = "/proc/mounts") -> str | None:
    """Return the filesystem type when ``path`` is on a network/FUSE filesystem, else ``None``.

    :param path: A file (need not exist yet: its directory is looked up).
    :param mounts_file: The mount table to read (Linux's ``/proc/mounts``; elsewhere absent, and
        then nothing is detected).
    """
    fstype = _mount_fstype(os.path.dirname(os.path.abspath(path)) or ".", mounts_file)
    if fstype and fstype.lower().startswith(_NETWORK_FS_PREFIXES):
        return fstype
    return None


def notice_backend(url: str) -> None:
    """Log once per process and queue what a SQLite queue implies for the deployment."""
    path = sqlite_path(url)
    if path is None:
        return
    with _notice_lock:
        if url in _noticed:
            return
        _noticed.add(url)
    fstype = network_filesystem(path)
    if fstype:
        log.warning(
            "The webhook event queue is the SQLite file %s on a %s filesystem. SQLite's locks are "
            "not reliable there and a SQLite queue serves one host only: when the receiver and the "
            "triggerer run on different machines, set [iterable] queue_url to a PostgreSQL "
            "database (postgresql+psycopg://...).",
            path,
            fstype,
        )
    else:
        log.info(
            "The webhook event queue is the SQLite file %s: it serves one host only (receiver and "
            "triggerer on this machine). Set [iterable] queue_url to a PostgreSQL database when "
            "they run on several machines.",
            path,
        )


def check_cursor_args(name: str, event_id: int | None = None) -> None:
    """Reject a bad consumer name or cursor position with a message naming the parameter."""
    if not isinstance(name, str) or not name.strip() or len(name) > 250:
        raise ValueError(f"name must be a non-empty string of at most 250 characters, got {name!r}")
    if event_id is not None and (isinstance(event_id, bool) or not isinstance(event_id, int) or event_id < 0):
        raise ValueError(f"event_id must be an int >= 0, got {event_id!r}")


@dataclass(frozen=True)
class FetchFilter:
    """The arguments of a ``fetch``, checked, and the SQL that answers it.

    :param after_id: Only events with a larger id.
    :param received_since: Only events received at or after this timezone-aware time.
    :param conn_id: Only events that came through this connection.
    :param kind: Only ``"system"`` or only ``"journey"`` events.
    :param event_name: Only events with this ``eventName``.
    :param workflow_id: Only events of this journey.
    :param limit: At most this many events (1 to :data:`MAX_FETCH_LIMIT`).
    """

    after_id: int = 0
    received_since: datetime | None = None
    conn_id: str | None = None
    kind: str | None = None
    event_name: str | None = None
    workflow_id: int | None = None
    limit: int = 1000

    def __post_init__(self) -> None:
        after_id, limit, workflow_id = self.after_id, self.limit, self.workflow_id
        if isinstance(after_id, bool) or not isinstance(after_id, int) or after_id < 0:
            raise ValueError(f"after_id must be an int >= 0, got {after_id!r}")
        since = self.received_since
        if since is not None and (not isinstance(since, datetime) or since.tzinfo is None):
            raise ValueError(f"received_since must be a timezone-aware datetime, got {since!r}")
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS} or None, got {self.kind!r}")
        if workflow_id is not None and (isinstance(workflow_id, bool) or not isinstance(workflow_id, int)):
            raise ValueError(f"workflow_id must be an int or None, got {workflow_id!r}")
        for name in ("conn_id", "event_name"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string or None, got {value!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_FETCH_LIMIT:
            raise ValueError(f"limit must be an int from 1 to {MAX_FETCH_LIMIT}, got {limit!r}")

    def query(self, dialect: str) -> Select[Any]:
        """Build the SELECT: every filter in SQL, the plan chosen to stay an index range scan.

        Three shapes, so that a poll costs what it returns, not the size of the queue:

        - a journey filter (``workflow_id``): a range of the ``(workflow_id, id)`` index;
        - a connection and an event name: a range of the ``(conn_id, kind, event_name, id)``
          index per kind (both kinds merged by id when ``kind`` is not given);
        - anything else: the primary key range after ``after_id`` (a trigger's poll from its
          cursor reads only the new rows).

        ``received_since`` becomes an id lower bound too (the smallest id received since then,
        found on the ``received_at`` index), which is exact: every event received since then
        has an id at least that large.

        SQLite's planner has no statistics on these tables, so on SQLite the columns that must
        not drive the plan are wrapped in a unary ``+`` (SQLite's documented way to keep an
        index out of a plan); PostgreSQL plans from its own statistics.
        """
        sqlite = dialect == "sqlite"

        def plain(column: Any) -> Any:
            if not sqlite:
                return column
            return UnaryExpression(column, operator=custom_op("+"), type_=column.type)

        lower: Any = literal(self.after_id, BigInteger())
        if self.received_since is not None:
            # "id + 0" keeps both planners from walking the primary key (from the oldest row)
            # looking for the first recent one: the (received_at, id) index answers it.
            first_since = (
                select(func.min(events.c.id + 0)).where(events.c.received_at >= self.received_since)
            ).scalar_subquery()
            # No event since then: a bound past every id, so the scan is empty.
            since_bound = func.coalesce(first_since - 1, literal(2**62, BigInteger()))
            lower = func.max(lower, since_bound) if sqlite else func.greatest(lower, since_bound)

        def shape(*, by_workflow: bool, by_name: bool, kind: str | None) -> Select[Any]:
            conditions: list[Any] = [events.c.id > lower]
            if self.received_since is not None:
                conditions.append(plain(events.c.received_at) >= self.received_since)
            if self.workflow_id is not None:
                column = events.c.workflow_id if by_workflow else plain(events.c.workflow_id)
                conditions.append(column == self.workflow_id)
            for name, value in (("conn_id", self.conn_id), ("kind", kind), ("event_name", self.event_name)):
                if value is not None:
                    column = events.c[name] if by_name else plain(events.c[name])
                    conditions.append(column == value)
            return select(events).where(and_(*conditions)).order_by(events.c.id).limit(self.limit)

        if self.workflow_id is not None:
            return shape(by_workflow=True, by_name=False, kind=self.kind)
        if self.conn_id is not None and self.event_name is not None:
            if self.kind is not None:
                return shape(by_workflow=False, by_name=True, kind=self.kind)
            parts = [shape(by_workflow=False, by_name=True, kind=kind).subquery() for kind in KINDS]
            merged = union_all(*(select(part) for part in parts)).subquery()
            return select(merged).order_by(merged.c.id).limit(self.limit)
        return shape(by_workflow=False, by_name=False, kind=self.kind)


def head_query() -> Select[Any]:
    """Build the SELECT of the newest event id (0 when the queue is empty)."""
    return select(func.coalesce(func.max(events.c.id), 0))


def cursor_query(name: str) -> Select[Any]:
    """Build the SELECT of one consumer's cursor."""
    return select(consumers.c.last_id).where(consumers.c.name == name)


def row_to_event(row: Row[Any]) -> StoredEvent:
    """Turn a row of ``iterable_events`` into a :class:`StoredEvent`."""
    m = row._mapping
    return StoredEvent(
        id=int(m["id"]),
        received_at=m["received_at"],
        conn_id=m["conn_id"],
        kind=m["kind"],
        event_name=m["event_name"],
        workflow_id=m["workflow_id"],
        campaign_id=m["campaign_id"],
        email=m["email"],
        user_id=m["user_id"],
        payload=m["payload"],
        query=m["query"],
    )


def cursor_upsert(dialect_name: str, name: str, event_id: int, now: datetime) -> Any:
    """Build the statement that moves a cursor forward (never back) and marks it live.

    ``updated_at`` changes even when the position does not: a consumer that is alive but sees
    no new events must keep holding back the purge.
    """
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg_stmt = pg_insert(consumers).values(name=name, last_id=event_id, updated_at=now)
        return pg_stmt.on_conflict_do_update(
            index_elements=[consumers.c.name],
            set_={
                "last_id": func.greatest(consumers.c.last_id, pg_stmt.excluded.last_id),
                "updated_at": pg_stmt.excluded.updated_at,
            },
        )
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    stmt = sqlite_insert(consumers).values(name=name, last_id=event_id, updated_at=now)
    return stmt.on_conflict_do_update(
        index_elements=[consumers.c.name],
        # SQLite's two-argument max() is the scalar maximum, not the aggregate.
        set_={
            "last_id": func.max(consumers.c.last_id, stmt.excluded.last_id),
            "updated_at": stmt.excluded.updated_at,
        },
    )
