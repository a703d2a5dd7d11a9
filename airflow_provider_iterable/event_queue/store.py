"""The synchronous side of the event queue: the receiver's writes, the CLI, purges.

Writers are serialised for the length of one short transaction: SQLite with ``BEGIN IMMEDIATE``
(and a busy timeout), PostgreSQL with a transaction-level advisory lock taken before the id is
drawn. Two things follow. The dedupe check and the insert cannot interleave with another
writer's, so 20 identical deliveries at once store one row. And ids become visible in increasing
order, so a reader that remembers the last id it saw never skips a slower, earlier transaction.
``append_many`` puts many events in one such transaction (group commit: one fsync for all).

A batch costs a fixed number of statements whatever its size (:mod:`.append`). Purges are in
:mod:`.retention`, the SQL of reads and cursors in :mod:`.queries`, engines in :mod:`.engines`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from airflow_provider_iterable import config
from airflow_provider_iterable._values import is_number
from airflow_provider_iterable.event_queue import queries, retention
from airflow_provider_iterable.event_queue.append import PG_LOCK, append_postgresql, append_sqlite
from airflow_provider_iterable.event_queue.engines import queue_engine, read_sqlite_settings
from airflow_provider_iterable.event_queue.errors import STORAGE_ERRORS, discard, translate_errors
from airflow_provider_iterable.event_queue.events import NewEvent, QueueUnavailableError, StoredEvent
from airflow_provider_iterable.event_queue.filters import EVERYTHING, WebhookFilter
from airflow_provider_iterable.event_queue.schema import (
    PG_WRITE_LOCK_KEY,
    create_schema,
    encode_json,
    normalize_url,
    safe_url,
    schema_version,
)
from airflow_provider_iterable.exceptions import IterableConfigError

log = logging.getLogger(__name__)


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
        if not is_number(busy_timeout, positive=True):
            raise IterableConfigError(f"busy_timeout must be a number of seconds > 0, got {busy_timeout!r}")
        self.url: str = normalize_url(url if url is not None else config.queue_url())
        self.dialect: str = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        self.busy_timeout = float(busy_timeout)
        self._clock = clock or _utcnow
        self._engine = queue_engine(self.url, busy_timeout=self.busy_timeout, pre_ping=True)
        # Appends on PostgreSQL skip the pool's ping (a round trip before every batch): the
        # advisory lock, their first statement, finds a dead connection as well, and nothing
        # has been written then, so the batch is retried once on a fresh connection.
        self._append_engine = (
            queue_engine(self.url, busy_timeout=self.busy_timeout, pre_ping=False, pool_size=2)
            if self.dialect == "postgresql"
            else self._engine
        )
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EventQueue({safe_url(self.url)!r})"

    # -- transactions -------------------------------------------------------------------------

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
                        conn.exec_driver_sql(PG_LOCK, {"key": PG_WRITE_LOCK_KEY})
                    break
                except DBAPIError as exc:
                    discard(conn)
                    conn.close()
                    if attempt == 1 and appending and exc.connection_invalidated:
                        log.debug("replacing a dead pooled queue connection: %s", exc.orig)
                        continue
                    raise
                except BaseException:
                    discard(conn)
                    conn.close()
                    raise
            with conn:
                try:
                    with transaction:
                        yield conn
                except STORAGE_ERRORS:
                    discard(conn)
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
        if not is_number(dedupe_window_seconds, minimum=0):
            raise IterableConfigError(
                f"dedupe_window_seconds must be a number of seconds >= 0, got {dedupe_window_seconds!r}"
            )
        return float(dedupe_window_seconds)

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise IterableConfigError("the queue's clock must return timezone-aware datetimes")
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
                # A programming error, not a value to correct: TypeError, as Python's own.
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
                outcome = append_postgresql(conn, candidates, encoded, now, cutoff)
            else:
                outcome = append_sqlite(conn, candidates, encoded, now, cutoff)
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
        queries.check_cursor_args(name, event_id)
        with self._write("set cursor", order_ids=False) as conn:
            conn.execute(queries.cursor_upsert(self.dialect, name, event_id, self._now()))

    def purge(self, *, retention_days: float | None = None) -> int:
        """Delete events older than the retention period that every live cursor has passed.

        A cursor not updated for longer than the retention period is stale: it no longer holds
        events back (a warning names it). Deletes run in small batches, each its own short
        transaction, so receivers never wait long for the write lock (:mod:`.retention`).

        :param retention_days: Keep events younger than this many days; ``None`` reads
            ``[iterable] webhook_retention_days``.
        :return: The number of events deleted.
        """
        return retention.purge(self, retention_days=retention_days)

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
            return int(conn.execute(queries.head_query()).scalar() or 0)

    def fetch(
        self, where: WebhookFilter = EVERYTHING, *, after_id: int = 0, limit: int = 1000
    ) -> list[StoredEvent]:
        """Return stored events after ``after_id`` that pass ``where``'s indexed parts, oldest first.

        Connection, kind, event name, journey and ``since`` are applied in SQL; ``where.match``
        is not (no index answers it): check each event with ``where.matches``, as the scans of
        :mod:`.scan` do.

        :param where: The filter; default every event.
        :param after_id: Only events with a larger id.
        :param limit: At most this many events (1 to 10,000).
        """
        query = queries.fetch_query(where, after_id=after_id, limit=limit, dialect=self.dialect)
        with self._read("fetch") as conn:
            return [queries.row_to_event(row) for row in conn.execute(query)]

    def get_cursor(self, name: str) -> int | None:
        """Return consumer ``name``'s cursor (the last event id it processed), ``None`` if unknown.

        :param name: The consumer's name.
        """
        queries.check_cursor_args(name)
        with self._read("get cursor") as conn:
            found = conn.execute(queries.cursor_query(name)).scalar()
        return None if found is None else int(found)

    def settings(self) -> dict[str, Any]:
        """Return the durability settings read back from a live connection (SQLite PRAGMAs).

        For PostgreSQL: ``synchronous_commit`` and ``fsync`` as the server reports them.
        """
        self._ensure_schema()
        with translate_errors("settings", self.url):
            if self.dialect == "sqlite":
                return read_sqlite_settings(self._engine)
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


__all__ = ["EventQueue", "QueueUnavailableError"]
