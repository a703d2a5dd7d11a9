"""The asynchronous side of the event queue, for triggers running in the triggerer's event loop.

Every read goes through SQLAlchemy's asyncio extension (``sqlite+aiosqlite``, async
``psycopg``), so a query, a lock wait or a slow disk never blocks the loop. All readers of one
queue in one event loop share one small engine (the triggerer may run a thousand waiting
sensors: they must not each open a pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from airflow_provider_iterable import config
from airflow_provider_iterable._values import is_number
from airflow_provider_iterable.event_queue import queries
from airflow_provider_iterable.event_queue.doorbell import Doorbell
from airflow_provider_iterable.event_queue.engines import reader_engine
from airflow_provider_iterable.event_queue.errors import STORAGE_ERRORS, translate_errors
from airflow_provider_iterable.event_queue.events import QueueUnavailableError, StoredEvent
from airflow_provider_iterable.event_queue.filters import EVERYTHING, WebhookFilter
from airflow_provider_iterable.event_queue.schema import create_schema, normalize_url, safe_url
from airflow_provider_iterable.exceptions import IterableConfigError

#: Seconds a reader's write (a cursor) waits for the SQLite write lock.
READER_BUSY_TIMEOUT = 5.0


@dataclass
class _SharedEngine:
    engine: AsyncEngine
    users: int = 0
    schema_ready: bool = False
    schema_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    doorbell: Doorbell | None = None


# One engine per (event loop, URL). Keyed weakly by the loop, so a closed and collected loop
# (tests run many) does not keep its engine alive.
_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _SharedEngine]] = (
    weakref.WeakKeyDictionary()
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
            shared = per_loop[self.url] = _SharedEngine(
                reader_engine(self.url, busy_timeout=READER_BUSY_TIMEOUT)
            )
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
                except STORAGE_ERRORS:
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
        self, where: WebhookFilter = EVERYTHING, *, after_id: int = 0, limit: int = 1000
    ) -> list[StoredEvent]:
        """Return stored events after ``after_id`` that pass ``where``'s indexed parts, oldest first.

        The same query as :meth:`EventQueue.fetch <.store.EventQueue.fetch>`: ``where.match`` is
        left to ``where.matches``.

        :param where: The filter; default every event.
        :param after_id: Only events with a larger id.
        :param limit: At most this many events (1 to 10,000).
        :raises QueueUnavailableError: when the store cannot be read right now.
        """
        query = queries.fetch_query(where, after_id=after_id, limit=limit, dialect=self.dialect)
        async with self._use("fetch") as conn:
            result = await conn.execute(query)
            return [queries.row_to_event(row) for row in result]

    async def head_id(self) -> int:
        """Return the newest event id, 0 when the queue is empty."""
        async with self._use("head_id") as conn:
            return int((await conn.execute(queries.head_query())).scalar() or 0)

    async def get_cursor(self, name: str) -> int | None:
        """Return consumer ``name``'s cursor, ``None`` if it has none yet.

        :param name: The consumer's name.
        """
        queries.check_cursor_args(name)
        async with self._use("get cursor") as conn:
            found = (await conn.execute(queries.cursor_query(name))).scalar()
        return None if found is None else int(found)

    async def set_cursor(self, name: str, event_id: int) -> None:
        """Move consumer ``name``'s durable cursor forward to ``event_id`` (never backwards).

        :param name: The consumer's name.
        :param event_id: The last event id the consumer has processed.
        """
        queries.check_cursor_args(name, event_id)
        async with self._use("set cursor", write=True) as conn:
            await conn.execute(
                queries.cursor_upsert(self.dialect, name, event_id, datetime.now(timezone.utc))
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
        if not is_number(timeout, minimum=0):
            raise IterableConfigError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        if self._closed:
            raise RuntimeError("this AsyncEventReader is closed")
        if self.dialect != "postgresql":
            await asyncio.sleep(timeout)
            return False
        shared = self._engine()
        if shared.doorbell is None:
            shared.doorbell = Doorbell(self.url)
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
