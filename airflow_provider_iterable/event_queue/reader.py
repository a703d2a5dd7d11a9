"""The asynchronous side of the event queue, for triggers running in the triggerer's event loop.

Every read goes through SQLAlchemy's asyncio extension (``sqlite+aiosqlite``, async
``psycopg``), so a query, a lock wait or a slow disk never blocks the loop. All readers of one
queue in one event loop share one small engine (the triggerer may run a thousand waiting
sensors: they must not each open a pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from airflow_provider_iterable import config
from airflow_provider_iterable.event_queue import _common
from airflow_provider_iterable.event_queue._common import translate_errors
from airflow_provider_iterable.event_queue.events import QueueUnavailableError, StoredEvent
from airflow_provider_iterable.event_queue.schema import (
    NOTIFY_CHANNEL,
    async_url,
    create_schema,
    normalize_url,
    safe_url,
)

log = logging.getLogger(__name__)

#: Seconds a reader's write (a cursor) waits for the SQLite write lock.
READER_BUSY_TIMEOUT = 5.0


#: Longest pause between attempts to re-open the PostgreSQL notification channel.
DOORBELL_MAX_BACKOFF = 30.0


class _Doorbell:
    """One ``LISTEN iterable_events`` connection per queue and event loop, fanned out to waiters.

    A thousand waiting sensors share it (not a thousand PostgreSQL connections). ``rings``
    counts the notifications; a waiter remembers the count it last saw, so a ring between two
    waits is not lost. Each time the channel opens (first use, or after a server restart) it
    rings once, since commits made before that were not announced.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.rings = 0
        self.listening = False
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="iterable-queue-doorbell")

    async def _ring(self) -> None:
        async with self._changed:
            self.rings += 1
            self._changed.notify_all()

    async def _run(self) -> None:
        import psycopg

        conninfo = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        backoff = 0.5
        failing = False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    conninfo,
                    autocommit=True,
                    connect_timeout=10,
                    application_name="airflow-provider-iterable-listener",
                )
                try:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.listening = True
                    if failing:
                        log.info("Listening to the event queue %s again.", safe_url(self.url))
                    failing, backoff = False, 0.5
                    # Commits made before the channel was open were not announced: ring once, so
                    # every waiter polls again now rather than at its timeout.
                    await self._ring()
                    async for _notify in conn.notifies():
                        await self._ring()
                finally:
                    self.listening = False
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Waiters keep working meanwhile: their waits time out and they poll.
                log_at = logging.DEBUG if failing else logging.WARNING
                log.log(
                    log_at,
                    "Cannot listen to the event queue %s (%s: %s); polling until it is back.",
                    safe_url(self.url),
                    type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                )
                failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, DOORBELL_MAX_BACKOFF)

    async def wait(self, seen: int, timeout: float) -> int | None:
        """Wait until ``rings`` exceeds ``seen``; return the new count, or None at the timeout."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.rings > seen), timeout)
            except asyncio.TimeoutError:
                return None
            return self.rings

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@dataclass
class _SharedEngine:
    engine: AsyncEngine
    users: int = 0
    schema_ready: bool = False
    schema_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    doorbell: _Doorbell | None = None


# One engine per (event loop, URL). Keyed weakly by the loop, so a closed and collected loop
# (tests run many) does not keep its engine alive.
_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _SharedEngine]] = (
    weakref.WeakKeyDictionary()
)


def _create_async_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(
            async_url(url),
            connect_args={"timeout": READER_BUSY_TIMEOUT},
            pool_size=2,
            max_overflow=3,
            pool_timeout=30,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            _common.sqlite_on_connect(dbapi_connection, READER_BUSY_TIMEOUT)

        event.listen(engine.sync_engine, "begin", _common.sqlite_on_begin)
        return engine
    return create_async_engine(
        async_url(url),
        connect_args={
            "connect_timeout": 10,
            "options": f"-c lock_timeout={int(READER_BUSY_TIMEOUT * 1000)}",
            "application_name": "airflow-provider-iterable-reader",
        },
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=3,
        pool_timeout=30,
    )


class AsyncEventReader:
    """Read the event queue from an event loop without ever blocking it.

    :param url: SQLAlchemy URL of the queue; ``None`` reads ``[iterable] queue_url``. The same
        URL as the receiver's (a plain ``sqlite:///`` or ``postgresql+psycopg://`` URL: the
        async driver is chosen here).
    """

    def __init__(self, url: str | None = None) -> None:
        self.url: str = normalize_url(url if url is not None else config.queue_url())
        self.dialect: str = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        self._shared: _SharedEngine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rings_seen: int | None = None  # the doorbell count at this reader's last wait
        self._closed = False

    def __repr__(self) -> str:
        return f"AsyncEventReader({safe_url(self.url)!r})"

    # -- engine -----------------------------------------------------------------------------

    def _engine(self) -> _SharedEngine:
        loop = asyncio.get_running_loop()
        if self._shared is not None and self._loop is loop:
            return self._shared
        if self._shared is not None:
            raise RuntimeError("an AsyncEventReader is bound to the event loop it was first used in")
        per_loop = _engines.setdefault(loop, {})
        shared = per_loop.get(self.url)
        if shared is None:
            shared = per_loop[self.url] = _SharedEngine(_create_async_engine(self.url))
        shared.users += 1
        self._shared, self._loop = shared, loop
        return shared

    async def _ensure_schema(self, shared: _SharedEngine) -> None:
        if shared.schema_ready:
            return
        async with shared.schema_lock:
            if shared.schema_ready:
                return
            async with self._connection(shared, "create schema", write=True) as conn:
                await conn.run_sync(create_schema, datetime.now(timezone.utc))
            shared.schema_ready = True

    @asynccontextmanager
    async def _connection(
        self, shared: _SharedEngine, action: str, *, write: bool
    ) -> AsyncIterator[AsyncConnection]:
        """Yield a connection inside a transaction that commits when the block ends.

        As :meth:`EventQueue._connection`: a SQLite write takes the write lock up front (a
        reader writes only cursors, so on PostgreSQL it never waits for the receivers); a
        storage error discards the connection and becomes :class:`QueueUnavailableError`.
        """
        with translate_errors(action, self.url):
            async with shared.engine.connect() as conn:
                try:
                    if write and self.dialect == "sqlite":
                        await conn.execution_options(iterable_begin="IMMEDIATE")
                    async with conn.begin():
                        yield conn
                except _common.STORAGE_ERRORS:
                    with contextlib.suppress(Exception):
                        await conn.invalidate()
                    raise

    @asynccontextmanager
    async def _use(self, action: str, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        if self._closed:
            raise RuntimeError("this AsyncEventReader is closed")
        shared = self._engine()
        await self._ensure_schema(shared)
        async with self._connection(shared, action, write=write) as conn:
            yield conn

    # -- reads ------------------------------------------------------------------------------

    async def fetch(
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

        The same filters as :meth:`EventQueue.fetch`, applied in SQL on indexed columns.

        :param after_id: Only events with a larger id.
        :param received_since: Only events received at or after this (timezone-aware) time.
        :param conn_id: Only events that came through this connection.
        :param kind: Only ``"system"`` or only ``"journey"`` events.
        :param event_name: Only events with this ``eventName``.
        :param workflow_id: Only events of this journey (``workflow_id`` column).
        :param limit: At most this many events (1 to 10,000).

        :raises QueueUnavailableError: when the store cannot be read right now.
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
        async with self._use("fetch") as conn:
            result = await conn.execute(query)
            return [_common.row_to_event(row) for row in result]

    async def head_id(self) -> int:
        """Return the newest event id, 0 when the queue is empty."""
        async with self._use("head_id") as conn:
            return int((await conn.execute(_common.head_query())).scalar() or 0)

    async def get_cursor(self, name: str) -> int | None:
        """Return consumer ``name``'s cursor, ``None`` if it has none yet.

        :param name: The consumer's name.
        """
        _common.check_cursor_args(name)
        async with self._use("get cursor") as conn:
            found = (await conn.execute(_common.cursor_query(name))).scalar()
        return None if found is None else int(found)

    async def set_cursor(self, name: str, event_id: int) -> None:
        """Move consumer ``name``'s durable cursor forward to ``event_id`` (never backwards).

        :param name: The consumer's name.
        :param event_id: The last event id the consumer has processed.
        """
        _common.check_cursor_args(name, event_id)
        async with self._use("set cursor", write=True) as conn:
            await conn.execute(
                _common.cursor_upsert(self.dialect, name, event_id, datetime.now(timezone.utc))
            )

    # -- doorbell ---------------------------------------------------------------------------

    async def wait_for_insert(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a new event to be committed.

        PostgreSQL: returns True as soon as a commit that stored events rings
        ``NOTIFY iterable_events`` (or at once, if one rang since this reader's previous wait),
        False at the timeout. All readers of the queue in this event loop share one ``LISTEN``
        connection; while it cannot be opened (server restarting) waits simply time out, so the
        caller polls. SQLite has no doorbell: it sleeps ``timeout`` and returns False. Either
        way the caller must ``fetch`` afterwards: True is only a hint.

        :param timeout: The longest wait, in seconds (>= 0).
        """
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        if self._closed:
            raise RuntimeError("this AsyncEventReader is closed")
        if self.dialect != "postgresql":
            await asyncio.sleep(timeout)
            return False
        shared = self._engine()
        if shared.doorbell is None:
            shared.doorbell = _Doorbell(self.url)
        bell = shared.doorbell
        bell.start()
        if self._rings_seen is None:
            self._rings_seen = bell.rings
        if bell.rings > self._rings_seen:  # rang since this reader last looked
            self._rings_seen = bell.rings
            return True
        rings = await bell.wait(self._rings_seen, float(timeout))
        if rings is None:
            return False
        self._rings_seen = rings
        return True

    async def close(self) -> None:
        """Release this reader. The shared engine is disposed when its last reader closes."""
        if self._closed:
            return
        self._closed = True
        shared, loop = self._shared, self._loop
        self._shared = None
        if shared is None or loop is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            per_loop = _engines.get(loop, {})
            if per_loop.get(self.url) is shared:
                del per_loop[self.url]
            if shared.doorbell is not None:
                await shared.doorbell.close()
            await shared.engine.dispose()

    async def __aenter__(self) -> AsyncEventReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


__all__ = ["AsyncEventReader", "QueueUnavailableError"]
