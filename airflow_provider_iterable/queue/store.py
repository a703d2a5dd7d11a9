"""The synchronous side of the event queue: the receiver's writes, the CLI, purges.

Writers are serialised for the length of one short transaction: SQLite with ``BEGIN IMMEDIATE``
(and a busy timeout), PostgreSQL with a transaction-level advisory lock taken before the id is
drawn. Two things follow. The dedupe check and the insert cannot interleave with another
writer's, so 20 identical deliveries at once store one row. And ids become visible in increasing
order, so a reader that remembers the last id it saw never skips a slower, earlier transaction.
``append_many`` puts many events in one such transaction (group commit: one fsync for all).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from airflow_provider_iterable import config
from airflow_provider_iterable.queue import _common
from airflow_provider_iterable.queue._common import translate_errors
from airflow_provider_iterable.queue.events import NewEvent, QueueUnavailableError, StoredEvent
from airflow_provider_iterable.queue.schema import (
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
        self._engine = self._create_engine()
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        _common.notice_backend(self.url)

    def __repr__(self) -> str:
        return f"EventQueue({safe_url(self.url)!r})"

    # -- engine and transactions -------------------------------------------------------------

    def _create_engine(self) -> Engine:
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
            pool_pre_ping=True,
            pool_size=5,
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
    def _connection(self, action: str, *, write: bool, order_ids: bool = True) -> Iterator[Connection]:
        """Yield a connection inside a transaction that commits when the block ends.

        A write transaction holds the writers' lock (SQLite ``BEGIN IMMEDIATE``; on PostgreSQL
        the advisory lock, unless ``order_ids`` is False: a write that stores no event, such as
        a cursor, need not wait for the receivers). Any storage error rolls back, discards the
        connection (a SQLite connection that once found its file read-only, or a PostgreSQL one
        whose server went away, stays broken: the next call must open a fresh one) and raises
        :class:`QueueUnavailableError`.
        """
        with translate_errors(action, self.url), self._engine.connect() as conn:
            try:
                if write and self.dialect == "sqlite":
                    conn.execution_options(iterable_begin="IMMEDIATE")
                with conn.begin():
                    if write and order_ids and self.dialect == "postgresql":
                        conn.execute(select(func.pg_advisory_xact_lock(PG_WRITE_LOCK_KEY)))
                    yield conn
            except _common.STORAGE_ERRORS:
                _common.discard(conn)
                raise

    @contextmanager
    def _write(self, action: str, *, order_ids: bool = True) -> Iterator[Connection]:
        """Yield a connection in a write transaction holding the writers' lock; commit on exit."""
        self._ensure_schema()
        with self._connection(action, write=True, order_ids=order_ids) as conn:
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
        # Encoded before the lock is taken: the lock is held only for the database work.
        encoded = [(encode_json(item.payload, "payload"), encode_json(item.query, "query")) for item in batch]
        with self._write("append") as conn:
            # Read inside the lock, so received_at follows id order on one host.
            now = self._now()
            earlier: dict[str, int] = {}
            if window > 0:
                cutoff = now - timedelta(seconds=window)
                keys = sorted({item.dedupe_key for item in batch})
                for start in range(0, len(keys), _IN_CHUNK):
                    rows = conn.execute(
                        select(events.c.dedupe_key, func.max(events.c.id))
                        .where(
                            events.c.dedupe_key.in_(keys[start : start + _IN_CHUNK]),
                            events.c.received_at >= cutoff,
                        )
                        .group_by(events.c.dedupe_key)
                    )
                    earlier.update({key: int(found) for key, found in rows})
            results: list[tuple[int, bool] | None] = [None] * len(batch)
            first_in_batch: dict[str, int] = {}
            rows_to_insert: list[dict[str, Any]] = []
            positions: list[int] = []
            for index, item in enumerate(batch):
                if item.dedupe_key in earlier:
                    results[index] = (earlier[item.dedupe_key], False)
                elif window > 0 and item.dedupe_key in first_in_batch:
                    continue  # filled in below, once the first copy has its id
                else:
                    first_in_batch[item.dedupe_key] = index
                    positions.append(index)
                    rows_to_insert.append(_row(item, *encoded[index], now))
            if rows_to_insert:
                new_ids = (
                    conn.execute(
                        insert(events).returning(events.c.id, sort_by_parameter_order=True),
                        rows_to_insert,
                    )
                    .scalars()
                    .all()
                )
                for index, new_id in zip(positions, new_ids, strict=True):
                    results[index] = (int(new_id), True)
                if self.dialect == "postgresql":
                    # Delivered at commit, only if the commit succeeds: a doorbell for LISTENers.
                    conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, str(max(new_ids)))))
            for index, item in enumerate(batch):
                if results[index] is None:
                    first = results[first_in_batch[item.dedupe_key]]
                    assert first is not None
                    results[index] = (first[0], False)
        return [result for result in results if result is not None]

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
        """Return consumer ``name``'s cursor (the last event id it processed), ``None`` if unknown."""
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

    def __enter__(self) -> EventQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _row(item: NewEvent, payload: str, query: str, now: datetime) -> dict[str, Any]:
    return {
        "received_at": now,
        "conn_id": item.conn_id,
        "kind": item.kind,
        "event_name": item.event_name,
        "workflow_id": item.workflow_id,
        "campaign_id": item.campaign_id,
        "email": item.email,
        "user_id": item.user_id,
        "dedupe_key": item.dedupe_key,
        "payload": payload,
        "query": query,
    }


__all__ = ["EventQueue", "QueueUnavailableError"]
