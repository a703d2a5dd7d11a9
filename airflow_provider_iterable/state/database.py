"""Connect to the state database, create its tables on first use, and keep its schema version.

The tables are prefixed ``iterable_`` like the event queue's and may live in the same database
(the default), but they are versioned on their own in ``iterable_state_schema``: the queue's
schema and the state's change independently.

Adding a table is adding it to :data:`metadata` and raising :data:`STATE_SCHEMA_VERSION`:
``create_all`` adds the missing tables to an older database, and the new version is recorded.
Changing an existing table needs a migration step in :func:`_create_schema` for the versions
before it.

With the default SQLite file the webhook receiver writes to the same file, so every writer here
keeps its transactions short (``BEGIN IMMEDIATE``, a few hundred rows at most, never open while
waiting on Iterable).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from airflow_provider_iterable._values import is_number
from airflow_provider_iterable.event_queue.engines import queue_engine
from airflow_provider_iterable.event_queue.errors import STORAGE_ERRORS
from airflow_provider_iterable.event_queue.schema import UTCDateTime, normalize_url, safe_url
from airflow_provider_iterable.exceptions import IterableConfigError, StateUnavailableError

__all__ = ["STATE_SCHEMA_TABLE", "STATE_SCHEMA_VERSION", "StateDatabase", "metadata"]

#: The version of the state tables this release writes; see the module docstring.
STATE_SCHEMA_VERSION = 1
STATE_SCHEMA_TABLE = "iterable_state_schema"

#: Key of the PostgreSQL advisory lock that serialises schema creation by concurrent tasks.
_PG_SCHEMA_LOCK_KEY = 0x4954_4552_5354_4154  # "ITERSTAT"

#: What a failure of the database looks like (the queue's list, which already includes SQLAlchemy's).
_STORAGE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, *STORAGE_ERRORS)

#: Every table of the state database (the runs table, the syncs' tables) is declared on this.
metadata = MetaData()

schema_version = Table(
    STATE_SCHEMA_TABLE,
    metadata,
    Column("version", Integer(), primary_key=True, autoincrement=False),
    Column("created_at", UTCDateTime(), nullable=False),
)


class StateDatabase:
    """The state database at ``url``: one engine, the schema created once, short transactions.

    Nothing connects at construction; the first :meth:`write` or :meth:`read` does.

    :param url: SQLAlchemy URL; ``None`` reads ``[iterable] sync_state_url`` (default: the event
        queue's database).
    :param busy_timeout: seconds a write waits for another writer's lock (SQLite's busy timeout,
        PostgreSQL's ``lock_timeout``).
    """

    def __init__(self, url: str | None = None, *, busy_timeout: float = 10.0) -> None:
        if url is None:
            from airflow_provider_iterable import config

            url = config.sync_state_url()
        if not isinstance(url, str) or not url.strip():
            raise IterableConfigError(f"the state database URL must be a non-empty string, got {url!r}")
        if not is_number(busy_timeout, positive=True):
            raise IterableConfigError(
                f"busy_timeout must be a positive number of seconds, got {busy_timeout!r}"
            )
        self.url = normalize_url(url)
        self.busy_timeout = float(busy_timeout)
        self._engine: Engine | None = None
        # The tables created so far: a module imported later may declare more on ``metadata``.
        self._tables_ready: frozenset[str] = frozenset()
        self._engine_lock = threading.Lock()
        self._schema_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StateDatabase({safe_url(self.url)!r})"

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return "sqlite" if self.url.startswith("sqlite") else "postgresql"

    @property
    def engine(self) -> Engine:
        """The engine (created on first use, with the queue's durable SQLite settings)."""
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    self._engine = queue_engine(self.url, busy_timeout=self.busy_timeout, pre_ping=True)
        return self._engine

    @contextmanager
    def write(self, action: str) -> Iterator[Connection]:
        """Run one short write transaction (SQLite ``BEGIN IMMEDIATE``); commit when the block ends.

        :param action: what is being written, for the error message.
        :raises StateUnavailableError: when the database cannot commit it now.
        """
        self.ensure_schema()
        with self._storage_errors(action), self._begin(write=True) as conn:
            yield conn

    @contextmanager
    def read(self, action: str) -> Iterator[Connection]:
        """Run one read transaction.

        :param action: what is being read, for the error message.
        :raises StateUnavailableError: when the database cannot be read now.
        """
        self.ensure_schema()
        with self._storage_errors(action), self._begin(write=False) as conn:
            yield conn

    def ensure_schema(self) -> None:
        """Create the tables on first use (or add the ones a newer release declares); check the version.

        :raises StateUnavailableError: when the database holds a newer schema than this release knows.
        """
        declared = frozenset(metadata.tables)
        if declared <= self._tables_ready:
            return
        with self._schema_lock:
            if declared <= self._tables_ready:
                return
            with self._storage_errors("create the schema"), self._begin(write=True) as conn:
                _create_schema(conn)
            self._tables_ready = declared

    def dispose(self) -> None:
        """Close the engine's pooled connections (a later call opens new ones)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    @contextmanager
    def _begin(self, *, write: bool) -> Iterator[Connection]:
        engine = self.engine
        if self.dialect == "sqlite":
            engine = engine.execution_options(iterable_begin="IMMEDIATE" if write else "DEFERRED")
        with engine.begin() as conn:
            yield conn

    @contextmanager
    def _storage_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except StateUnavailableError:
            raise
        except _STORAGE_ERRORS as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            reason = detail[0] if detail else type(exc).__name__
            raise StateUnavailableError(
                f"state database {safe_url(self.url)} unavailable ({action}): {type(exc).__name__}: {reason}"
            ) from exc


def _create_schema(conn: Connection) -> None:
    """Create missing tables inside the caller's write transaction, then record or check the version."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK_KEY)))
    metadata.create_all(conn, checkfirst=True)
    found = conn.execute(select(func.max(schema_version.c.version))).scalar()
    if found is not None and found > STATE_SCHEMA_VERSION:
        raise StateUnavailableError(
            f"the state database holds schema version {found}, newer than this release supports "
            f"({STATE_SCHEMA_VERSION}): upgrade airflow-provider-iterable"
        )
    if found is None or found < STATE_SCHEMA_VERSION:
        # Versions below this one only lacked tables, which create_all has just added.
        conn.execute(
            insert(schema_version).values(version=STATE_SCHEMA_VERSION, created_at=datetime.now(timezone.utc))
        )
