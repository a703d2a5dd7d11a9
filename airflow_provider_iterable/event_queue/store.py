"""The synchronous side of the event queue: the receiver's writes, the CLI, purges.

Writers are serialised for the length of one short transaction: SQLite with ``BEGIN IMMEDIATE``
(and a busy timeout), PostgreSQL with a transaction-level advisory lock taken before the id is
drawn. Two things follow. The dedupe check and the insert cannot interleave with another
writer's, so 20 identical deliveries at once store one row. And ids become visible in increasing
order, so a reader that remembers the last id it saw never skips a slower, earlier transaction.
``append_many`` puts many events in one such transaction (group commit: one fsync for all).

A batch costs a fixed number of statements whatever its size. On PostgreSQL: the lock, then one
statement (the same text for every batch, so prepared once) that looks up earlier copies, inserts
the rest and rings the doorbell. On SQLite: the dedupe lookup, one ``executemany`` insert and
``last_insert_rowid()``.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import create_engine, delete, event, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from airflow_provider_iterable import config
from airflow_provider_iterable.event_queue import _common
from airflow_provider_iterable.event_queue._common import translate_errors
from airflow_provider_iterable.event_queue.events import NewEvent, QueueUnavailableError, StoredEvent
from airflow_provider_iterable.event_queue.schema import (
    EVENTS_TABLE,
    NOTIFY_CHANNEL,
    PG_WRITE_LOCK_KEY,
    consumers,
    create_schema,
    encode_json,
    events,
    normalize_url,
    safe_url,
    schema_version,
)

log = logging.getLogger(__name__)

#: Rows deleted per purge transaction: small enough that receivers never wait long on the lock.
PURGE_BATCH = 2_000

# SQLite allows at most 999 bound parameters per statement in older builds.
_IN_CHUNK = 500


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class EventQueue:
    """The durable webhook event queue (synchronous API).

    Thread-safe and safe across processes. The schema is created on first use.

    :param url: SQLAlchemy URL of the queue; ``None`` reads ``[iterable] queue_url`` (default: a
        SQLite file in ``$AIRFLOW_HOME``). ``postgresql+psycopg://...`` for several hosts.
    :param busy_timeout: Seconds a write waits for another writer's lock (SQLite busy timeout,
        PostgreSQL ``lock_timeout``) before raising :class:`QueueUnavailableError`.
    :param clock: Returns the current time (timezone-aware); ``received_at`` and every window are
        measured with it. Tests inject one; the default is the system's UTC clock.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        busy_timeout: float = 5.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float) or busy_timeout <= 0:
            raise ValueError(f"busy_timeout must be a number of seconds > 0, got {busy_timeout!r}")
        self.url: str = normalize_url(url if url is not None else config.queue_url())
        self.dialect: str = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        self.busy_timeout = float(busy_timeout)
        self._clock = clock or _utcnow
        self._engine = self._create_engine(pre_ping=True)
        # Appends on PostgreSQL skip the pool's ping (a round trip before every batch): the
        # advisory lock, their first statement, finds a dead connection as well, and nothing
        # has been written then, so the batch is retried once on a fresh connection.
        self._append_engine = (
            self._create_engine(pre_ping=False, pool_size=2) if self.dialect == "postgresql" else self._engine
        )
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EventQueue({safe_url(self.url)!r})"

    # -- engine and transactions -------------------------------------------------------------

    def _create_engine(self, *, pre_ping: bool, pool_size: int = 5) -> Engine:
        if self.dialect == "sqlite":
            engine = create_engine(
                self.url,
                connect_args={"timeout": self.busy_timeout, "check_same_thread": False},
                pool_size=5,
                max_overflow=20,
                pool_timeout=self.busy_timeout * 2,
            )
            busy_timeout = self.busy_timeout

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_connection: Any, _record: Any) -> None:
                _common.sqlite_on_connect(dbapi_connection, busy_timeout)

            event.listen(engine, "begin", _common.sqlite_on_begin)
            return engine
        lock_ms = int(self.busy_timeout * 1000)
        return create_engine(
            self.url,
            connect_args={
                "connect_timeout": max(1, int(self.busy_timeout)),
                "options": f"-c lock_timeout={lock_ms}",
                "application_name": "airflow-provider-iterable",
            },
            pool_pre_ping=pre_ping,
            pool_size=pool_size,
            max_overflow=20,
            pool_timeout=self.busy_timeout * 2,
        )

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            with self._connection("create schema", write=True) as conn:
                create_schema(conn, self._now())
            self._schema_ready = True

    @contextmanager
    def _connection(
        self, action: str, *, write: bool, order_ids: bool = True, appending: bool = False
    ) -> Iterator[Connection]:
        """Yield a connection inside a transaction that commits when the block ends.

        A write transaction holds the writers' lock (SQLite ``BEGIN IMMEDIATE``; on PostgreSQL
        the advisory lock, unless ``order_ids`` is False: a write that stores no event, such as
        a cursor, need not wait for the receivers). Any storage error rolls back, discards the
        connection (a SQLite connection that once found its file read-only, or a PostgreSQL one
        whose server went away, stays broken: the next call must open a fresh one) and raises
        :class:`QueueUnavailableError`.

        ``appending`` (PostgreSQL): use the pool without pre-ping; a pooled connection found dead
        by the lock statement is replaced once, as the ping would have done.
        """
        engine = self._append_engine if appending else self._engine
        lock = write and order_ids and self.dialect == "postgresql"
        with translate_errors(action, self.url):
            for attempt in (1, 2):
                conn = engine.connect()
                try:
                    if write and self.dialect == "sqlite":
                        conn.execution_options(iterable_begin="IMMEDIATE")
                    transaction = conn.begin()
                    if lock:
                        conn.exec_driver_sql(_PG_LOCK, {"key": PG_WRITE_LOCK_KEY})
                    break
                except DBAPIError as exc:
                    _common.discard(conn)
                    conn.close()
                    if attempt == 1 and appending and exc.connection_invalidated:
                        log.debug("replacing a dead pooled queue connection: %s", exc.orig)
                        continue
                    raise
                except BaseException:
                    _common.discard(conn)
                    conn.close()
                    raise
            with conn:
                try:
                    with transaction:
                        yield conn
                except _common.STORAGE_ERRORS:
                    _common.discard(conn)
                    raise

    @contextmanager
    def _write(self, action: str, *, order_ids: bool = True, appending: bool = False) -> Iterator[Connection]:
        """Yield a connection in a write transaction holding the writers' lock; commit on exit."""
        self._ensure_schema()
        with self._connection(action, write=True, order_ids=order_ids, appending=appending) as conn:
            yield conn

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        """Yield a connection in a read transaction (no lock: WAL readers never wait)."""
        self._ensure_schema()
        with self._connection(action, write=False) as conn:
            yield conn

    def _window(self, dedupe_window_seconds: float | None) -> float:
        if dedupe_window_seconds is None:
            return config.webhook_dedupe_window_seconds()
        if (
            isinstance(dedupe_window_seconds, bool)
            or not isinstance(dedupe_window_seconds, int | float)
            or dedupe_window_seconds < 0
        ):
            raise ValueError(
                f"dedupe_window_seconds must be a number of seconds >= 0, got {dedupe_window_seconds!r}"
            )
        return float(dedupe_window_seconds)

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the queue's clock must return timezone-aware datetimes")
        return now.astimezone(timezone.utc)

    # -- writes ---------------------------------------------------------------------------------

    def append(self, event: NewEvent, *, dedupe_window_seconds: float | None = None) -> tuple[int, bool]:
        """Store one event durably, unless it is a retry of one stored within the dedupe window.

        :param event: The event to store.
        :param dedupe_window_seconds: How far back an identical ``dedupe_key`` makes this a
            duplicate; ``None`` reads ``[iterable] webhook_dedupe_window_seconds``; 0 disables it.
        :return: ``(id, True)`` when stored now, ``(id of the earlier event, False)`` for a
            duplicate. The row is committed (fsynced) when this returns.
        :raises QueueUnavailableError: when the store cannot commit; nothing was stored then.
        """
        return self.append_many([event], dedupe_window_seconds=dedupe_window_seconds)[0]

    def append_many(
        self, events_in: Sequence[NewEvent], *, dedupe_window_seconds: float | None = None
    ) -> list[tuple[int, bool]]:
        """Store many events in one transaction (one fsync), each with :meth:`append`'s semantics.

        A ``dedupe_key`` repeated within the batch is stored once; the later copies are
        reported as duplicates of it. Either all events of the batch are stored or none is.

        :param events_in: The events, in the order their ids are assigned.
        :param dedupe_window_seconds: As for :meth:`append`.
        :return: One ``(id, stored)`` pair per event, in order.
        :raises QueueUnavailableError: when the store cannot commit; nothing was stored then.
        """
        batch = list(events_in)
        for item in batch:
            if not isinstance(item, NewEvent):
                raise TypeError(f"append_many takes NewEvent objects, got {type(item).__name__}")
        if not batch:
            return []
        window = self._window(dedupe_window_seconds)
        # Within the batch, only the first copy of a dedupe_key is written (when deduplicating);
        # the later copies are answered with its id. Decided before the lock is taken, and the
        # JSON encoded too: the lock is held only for the database work.
        first_in_batch: dict[str, int] = {}
        positions: list[int] = []
        for index, item in enumerate(batch):
            if window > 0 and item.dedupe_key in first_in_batch:
                continue
            first_in_batch.setdefault(item.dedupe_key, index)
            positions.append(index)
        candidates = [batch[index] for index in positions]
        encoded = [
            (str(encode_json(item.payload, "payload")), str(encode_json(item.query, "query")))
            for item in candidates
        ]
        with self._write("append", appending=True) as conn:
            # Read inside the lock, so received_at follows id order on one host.
            now = self._now()
            cutoff = now - timedelta(seconds=window) if window > 0 else None
            if self.dialect == "postgresql":
                outcome = _append_postgresql(conn, candidates, encoded, now, cutoff)
            else:
                outcome = _append_sqlite(conn, candidates, encoded, now, cutoff)
        results: list[tuple[int, bool]] = []
        by_position = dict(zip(positions, outcome, strict=True))
        for index, item in enumerate(batch):
            found = by_position.get(index)
            if found is None:  # a later copy within the batch
                found = (by_position[first_in_batch[item.dedupe_key]][0], False)
            results.append(found)
        return results

    def set_cursor(self, name: str, event_id: int) -> None:
        """Move consumer ``name``'s durable cursor forward to ``event_id`` (never backwards).

        Also marks the consumer live: a cursor not set for longer than the retention period
        stops holding back the purge.

        :param name: The consumer's name.
        :param event_id: The id of the last event it has processed.
        """
        _common.check_cursor_args(name, event_id)
        with self._write("set cursor", order_ids=False) as conn:
            conn.execute(_common.cursor_upsert(self.dialect, name, event_id, self._now()))

    def purge(self, *, retention_days: float | None = None) -> int:
        """Delete events older than the retention period that every live cursor has passed.

        A cursor not updated for longer than the retention period is stale: it no longer holds
        events back (a warning names it). Deletes run in batches of :data:`PURGE_BATCH` rows,
        each its own short transaction, so receivers never wait long for the write lock.

        :param retention_days: Keep events younger than this many days; ``None`` reads
            ``[iterable] webhook_retention_days``.
        :return: The number of events deleted.
        """
        if retention_days is None:
            retention_days = config.webhook_retention_days()
        if (
            isinstance(retention_days, bool)
            or not isinstance(retention_days, int | float)
            or retention_days < 0
        ):
            raise ValueError(f"retention_days must be a number of days >= 0, got {retention_days!r}")
        cutoff = self._now() - timedelta(days=float(retention_days))
        with self._read("purge") as conn:
            # "id + 0": from the (received_at, id) index, not a walk of the primary key.
            upto = conn.execute(
                select(func.max(events.c.id + 0)).where(events.c.received_at < cutoff)
            ).scalar()
            cursor_rows = conn.execute(
                select(consumers.c.name, consumers.c.last_id, consumers.c.updated_at)
            ).all()
        if upto is None:
            return 0
        for name, last_id, updated_at in cursor_rows:
            if updated_at < cutoff:
                log.warning(
                    "Consumer %r has not moved its cursor (at event %d) since %s, longer than the "
                    "retention period of %s days: it no longer holds events back from the purge.",
                    name,
                    last_id,
                    updated_at.isoformat(),
                    retention_days,
                )
            else:
                upto = min(upto, int(last_id))
        deleted = 0
        while True:
            with self._write("purge") as conn:
                doomed = (
                    select(events.c.id)
                    .where(events.c.id <= upto, events.c.received_at < cutoff)
                    .order_by(events.c.id)
                    .limit(PURGE_BATCH)
                    .scalar_subquery()
                )
                count = conn.execute(delete(events).where(events.c.id.in_(doomed))).rowcount or 0
            deleted += count
            if count < PURGE_BATCH:
                break
        if deleted:
            log.info("Purged %d webhook events received before %s.", deleted, cutoff.isoformat())
        return deleted

    # -- reads ----------------------------------------------------------------------------------

    def ping(self) -> None:
        """Check that the queue can commit a write right now.

        Commits a one-row update (the schema row's ``checked_at``) under the writers' lock, so a
        locked, read-only, full or unreachable store is reported the way an append would see it.

        :raises QueueUnavailableError: when it cannot.
        """
        with self._write("ping") as conn:
            conn.execute(update(schema_version).values(checked_at=self._now()))

    def head_id(self) -> int:
        """Return the newest event id, 0 when the queue is empty.

        Events stored later always get larger ids, so ``fetch(after_id=head_id())`` returns
        only events stored after this call.
        """
        with self._read("head_id") as conn:
            return int(conn.execute(_common.head_query()).scalar() or 0)

    def fetch(
        self,
        *,
        after_id: int = 0,
        received_since: datetime | None = None,
        conn_id: str | None = None,
        kind: str | None = None,
        event_name: str | None = None,
        workflow_id: int | None = None,
        limit: int = 1000,
    ) -> list[StoredEvent]:
        """Return stored events matching every given filter, oldest (smallest id) first.

        :param after_id: Only events with a larger id.
        :param received_since: Only events received at or after this (timezone-aware) time.
        :param conn_id: Only events that came through this connection.
        :param kind: Only ``"system"`` or only ``"journey"`` events.
        :param event_name: Only events with this ``eventName``.
        :param workflow_id: Only events of this journey (``workflow_id`` column).
        :param limit: At most this many events (1 to 10,000).
        """
        query = _common.FetchFilter(
            after_id=after_id,
            received_since=received_since,
            conn_id=conn_id,
            kind=kind,
            event_name=event_name,
            workflow_id=workflow_id,
            limit=limit,
        ).query(self.dialect)
        with self._read("fetch") as conn:
            return [_common.row_to_event(row) for row in conn.execute(query)]

    def get_cursor(self, name: str) -> int | None:
        """Return consumer ``name``'s cursor (the last event id it processed), ``None`` if unknown.

        :param name: The consumer's name.
        """
        _common.check_cursor_args(name)
        with self._read("get cursor") as conn:
            found = conn.execute(_common.cursor_query(name)).scalar()
        return None if found is None else int(found)

    def settings(self) -> dict[str, Any]:
        """Return the durability settings read back from a live connection (SQLite PRAGMAs).

        For PostgreSQL: ``synchronous_commit`` and ``fsync`` as the server reports them.
        """
        self._ensure_schema()
        with translate_errors("settings", self.url):
            if self.dialect == "sqlite":
                return _common.read_sqlite_settings(self._engine)
            with self._engine.connect() as conn:
                return {
                    "synchronous_commit": conn.exec_driver_sql("SHOW synchronous_commit").scalar(),
                    "fsync": conn.exec_driver_sql("SHOW fsync").scalar(),
                }

    def close(self) -> None:
        """Close every pooled connection. The queue reconnects if used again."""
        self._engine.dispose()
        self._append_engine.dispose()

    def __enter__(self) -> EventQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# The columns an append writes, in the order of the statements below.
_EVENT_COLUMNS = (
    "conn_id",
    "kind",
    "event_name",
    "workflow_id",
    "campaign_id",
    "email",
    "user_id",
    "dedupe_key",
    "payload",
    "query",
)
_PG_ARRAY_TYPES = ("text", "text", "text", "bigint", "bigint", "text", "text", "text", "text", "text")
_PG_ARRAYS = ", ".join(f"%({c})b::{t}[]" for c, t in zip(_EVENT_COLUMNS, _PG_ARRAY_TYPES, strict=True))

# One statement for the whole batch on PostgreSQL, its text the same for every batch size (one
# array per column), so the driver converts it once and the server prepares and plans it once:
# the earlier copies within the dedupe window are looked up, the others inserted in the batch's
# order (identity values are drawn in the ORDER BY's order, so sorted ids follow that order) and
# the doorbell is rung, all in one round trip. It runs after the advisory lock is granted, as a
# statement of its own: in READ COMMITTED a statement's snapshot is taken when it starts, so it
# sees every event committed by the writers that held the lock before.
_PG_APPEND = f"""
WITH batch AS (
    SELECT * FROM unnest({_PG_ARRAYS})
        WITH ORDINALITY AS b({", ".join(_EVENT_COLUMNS)}, ord)
), earlier AS (
    SELECT k.dedupe_key, found.id FROM unnest(%(window_keys)b::text[]) AS k(dedupe_key)
    CROSS JOIN LATERAL (
        SELECT max(e.id) AS id FROM {EVENTS_TABLE} AS e
        WHERE e.dedupe_key = k.dedupe_key AND e.received_at >= %(cutoff)b
    ) AS found
    WHERE found.id IS NOT NULL
), stored AS (
    INSERT INTO {EVENTS_TABLE} (received_at, {", ".join(_EVENT_COLUMNS)})
    SELECT %(received_at)b, {", ".join(f"batch.{c}" for c in _EVENT_COLUMNS)} FROM batch
    WHERE NOT EXISTS (SELECT 1 FROM earlier WHERE earlier.dedupe_key = batch.dedupe_key)
    ORDER BY batch.ord
    RETURNING id
), doorbell AS (
    SELECT pg_notify(%(channel)b, max(id)::text) FROM stored HAVING count(*) > 0
)
SELECT NULL AS dedupe_key, id FROM stored
UNION ALL SELECT dedupe_key, id FROM earlier
UNION ALL SELECT NULL, NULL FROM doorbell
"""


def _append_postgresql(
    conn: Connection,
    candidates: list[NewEvent],
    encoded: list[tuple[str, str]],
    now: datetime,
    cutoff: datetime | None,
) -> list[tuple[int, bool]]:
    """Store ``candidates`` (dedupe keys unique when deduplicating) on PostgreSQL; see :data:`_PG_APPEND`.

    :return: ``(id, stored)`` per candidate, in order.
    """
    params: dict[str, Any] = {
        "conn_id": [item.conn_id for item in candidates],
        "kind": [item.kind for item in candidates],
        "event_name": [item.event_name for item in candidates],
        "workflow_id": [item.workflow_id for item in candidates],
        "campaign_id": [item.campaign_id for item in candidates],
        "email": [item.email for item in candidates],
        "user_id": [item.user_id for item in candidates],
        "dedupe_key": [item.dedupe_key for item in candidates],
        "payload": [payload for payload, _ in encoded],
        "query": [query for _, query in encoded],
        # No window: nothing counts as an earlier copy.
        "window_keys": [] if cutoff is None else [item.dedupe_key for item in candidates],
        "cutoff": cutoff or now,
        "received_at": now,
        "channel": NOTIFY_CHANNEL,
    }
    new_ids: list[int] = []
    earlier: dict[str, int] = {}
    for key, found in conn.exec_driver_sql(_PG_APPEND, params):
        if key is not None:
            earlier[key] = int(found)
        elif found is not None:
            new_ids.append(int(found))
    new_ids.sort()
    fresh = iter(new_ids)
    results = [
        (earlier[item.dedupe_key], False) if item.dedupe_key in earlier else (next(fresh), True)
        for item in candidates
    ]
    if next(fresh, None) is not None:  # pragma: no cover - would be a broken invariant, not a state
        raise RuntimeError("the queue stored more rows than the batch held")
    return results


_PG_LOCK = "SELECT pg_advisory_xact_lock(%(key)s)"

_SQLITE_INSERT = (
    f"INSERT INTO {EVENTS_TABLE} (received_at, {', '.join(_EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(_EVENT_COLUMNS) + 1))})"
)


@functools.lru_cache(maxsize=64)
def _sqlite_earlier(count: int) -> str:
    """Return the SELECT of the newest id per dedupe key among ``count`` keys, since a time."""
    return (
        f"SELECT dedupe_key, max(id) FROM {EVENTS_TABLE} "
        f"WHERE dedupe_key IN ({', '.join('?' * count)}) AND received_at >= ? GROUP BY dedupe_key"
    )


def _append_sqlite(
    conn: Connection,
    candidates: list[NewEvent],
    encoded: list[tuple[str, str]],
    now: datetime,
    cutoff: datetime | None,
) -> list[tuple[int, bool]]:
    """Store ``candidates`` (dedupe keys unique when deduplicating) on SQLite.

    The rows go in with one ``executemany``. The transaction holds SQLite's write lock
    (``BEGIN IMMEDIATE``) and the table is ``AUTOINCREMENT``, so each row gets the next id after
    the largest ever used: the ids of one batch are consecutive and end at
    ``last_insert_rowid()``.

    :return: ``(id, stored)`` per candidate, in order.
    """
    # Timestamps bound as the column type writes them (the same text as every other write).
    to_text = events.c.received_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    assert to_text is not None
    earlier: dict[str, int] = {}
    if cutoff is not None:
        keys = [item.dedupe_key for item in candidates]
        since = to_text(cutoff)
        for start in range(0, len(keys), _IN_CHUNK):
            chunk = keys[start : start + _IN_CHUNK]
            rows = conn.exec_driver_sql(_sqlite_earlier(len(chunk)), (*chunk, since))
            earlier.update({key: int(found) for key, found in rows})
    to_store = [index for index, item in enumerate(candidates) if item.dedupe_key not in earlier]
    if to_store:
        stamp = to_text(now)
        rows_in = []
        for index in to_store:
            item = candidates[index]
            payload, query = encoded[index]
            rows_in.append(
                (
                    stamp,
                    item.conn_id,
                    item.kind,
                    item.event_name,
                    item.workflow_id,
                    item.campaign_id,
                    item.email,
                    item.user_id,
                    item.dedupe_key,
                    payload,
                    query,
                )
            )
        result = conn.exec_driver_sql(_SQLITE_INSERT, rows_in)
        if result.rowcount != len(rows_in):  # pragma: no cover - sqlite3 reports every row
            raise RuntimeError(f"SQLite stored {result.rowcount} of {len(rows_in)} rows")
        last = int(conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one())
    results: list[tuple[int, bool]] = []
    next_id = last - len(to_store) + 1 if to_store else 0
    for item in candidates:
        if item.dedupe_key in earlier:
            results.append((earlier[item.dedupe_key], False))
        else:
            results.append((next_id, True))
            next_id += 1
    return results


__all__ = ["EventQueue", "QueueUnavailableError"]
