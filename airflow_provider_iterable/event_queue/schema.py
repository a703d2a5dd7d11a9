"""Tables of the event queue, the database URL rules, and the connection settings of each backend.

Three tables, prefixed so the queue can share a PostgreSQL database with other applications:

- ``iterable_events``: the append-only log. ``id`` only increases and is never reused (SQLite
  ``AUTOINCREMENT``, a PostgreSQL identity), so a purge of the newest rows cannot make a later
  event reuse an id a consumer has already passed.
- ``iterable_consumers``: durable cursors (``name``, ``last_id``, ``updated_at``).
- ``iterable_queue_schema``: one row holding the schema version, so a later release can migrate.

``received_at`` is the receiving process's UTC clock, read while that process holds the write
lock (see :mod:`.store`), never the database server's clock: the dedupe window, the retention
and a sensor's "received since the run started" all compare it with Python clocks on Airflow's
hosts, so it is kept on the same clock as they are.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.types import TypeDecorator

from airflow_provider_iterable.event_queue.events import QueueUnavailableError
from airflow_provider_iterable.exceptions import IterableConfigError

SCHEMA_VERSION = 1

EVENTS_TABLE = "iterable_events"
CONSUMERS_TABLE = "iterable_consumers"
SCHEMA_TABLE = "iterable_queue_schema"

#: Channel of PostgreSQL's ``NOTIFY`` doorbell, rung by every commit that stored an event.
NOTIFY_CHANNEL = "iterable_events"

#: Key of the PostgreSQL advisory lock that serialises writers (and schema creation). Holding it
#: from before the id is drawn until the commit makes ids become visible in increasing order,
#: which is what lets a reader remember only the last id it saw.
PG_WRITE_LOCK_KEY = 0x4954_4552_5155_4555  # "ITERQUEU"
PG_SCHEMA_LOCK_KEY = 0x4954_4552_5343_484D  # "ITERSCHM"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back timezone-aware on every backend.

    SQLite has no timezone type: SQLAlchemy stores the naive digits (which sort correctly as
    text); PostgreSQL gets ``timestamptz``. Either way the value is normalised to UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise IterableConfigError(f"naive datetime {value!r}: queue timestamps must be timezone-aware")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class EncodedJSON(str):
    """JSON text already encoded (by :func:`encode_json`), bound as is."""


def encode_json(value: Any, name: str) -> EncodedJSON:
    """Encode ``value`` as the queue stores JSON; raise IterableConfigError naming ``name`` if impossible.

    ASCII-only output: ``\\u`` escapes keep NUL characters and lone surrogates (both valid
    in a JSON document) storable on every backend, and the text identical on both.

    :param value: The JSON value.
    :param name: What the value is (``payload``, ``query``), for the error message.
    """
    try:
        return EncodedJSON(json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise IterableConfigError(f"{name} is not JSON-serialisable: {exc}") from None


class JSONText(TypeDecorator[Any]):
    """JSON kept as text, identical on both backends (and readable with plain ``sqlite3``)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, EncodedJSON):
            return str(value)
        return str(encode_json(value, "value"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(value)


metadata = MetaData()

# SQLite only aliases the rowid (and honours AUTOINCREMENT) for a column typed exactly INTEGER.
_ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    EVENTS_TABLE,
    metadata,
    Column("id", _ID_TYPE, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("conn_id", String(250), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("event_name", String(255), nullable=True),
    Column("workflow_id", BigInteger(), nullable=True),
    Column("campaign_id", BigInteger(), nullable=True),
    Column("email", Text(), nullable=True),
    Column("user_id", Text(), nullable=True),
    Column("dedupe_key", String(128), nullable=False),
    Column("payload", JSONText(), nullable=False),
    Column("query", JSONText(), nullable=False),
    # The trigger's filters; ``id`` last in each so "after this id, in id order" is an index range.
    Index("ix_iterable_events_conn_kind_name_id", "conn_id", "kind", "event_name", "id"),
    Index("ix_iterable_events_workflow_id", "workflow_id", "id"),
    # With id, so "the first id received since t" (a sensor's window) and "the last id received
    # before t" (the purge) are answered from the index alone.
    Index("ix_iterable_events_received_at", "received_at", "id"),
    Index("ix_iterable_events_dedupe", "dedupe_key", "received_at"),
    sqlite_autoincrement=True,
)

consumers = Table(
    CONSUMERS_TABLE,
    metadata,
    Column("name", String(250), primary_key=True),
    Column("last_id", BigInteger(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

schema_version = Table(
    SCHEMA_TABLE,
    metadata,
    Column("version", Integer(), primary_key=True, autoincrement=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # Written by EventQueue.ping(): proof that a commit went through, and when.
    Column("checked_at", UTCDateTime(), nullable=True),
)


def normalize_url(url: str) -> str:
    """Return ``url`` with the driver this package uses, or raise for an unsupported backend.

    :param url: A SQLAlchemy URL: ``sqlite:///path``, ``postgresql://...`` or
        ``postgresql+psycopg://...``.
    :raises IterableConfigError: for any other backend or driver (the message names ``queue_url``).
    """
    if not isinstance(url, str) or not url.strip():
        raise IterableConfigError(f"queue_url must be a SQLAlchemy URL string, got {url!r}")
    try:
        parsed = make_url(url.strip())
    except Exception as exc:
        raise IterableConfigError(f"queue_url {url!r} is not a valid SQLAlchemy URL: {exc}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite", "aiosqlite"):
        parsed = parsed.set(drivername="sqlite")
        if parsed.database in (None, "", ":memory:"):
            raise IterableConfigError(
                "queue_url must name a SQLite file (an in-memory database is not shared between "
                f"the receiver and the triggers), got {url!r}"
            )
    elif backend in ("postgresql", "postgres") and driver in ("", "psycopg", "psycopg_async"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        raise IterableConfigError(
            f"queue_url {parsed.render_as_string(hide_password=True)!r} is not supported: use "
            "sqlite:///<file> or postgresql+psycopg://<user>@<host>/<database>"
        )
    return parsed.render_as_string(hide_password=False)


def async_url(url: str) -> str:
    """Return the asyncio-driver form of a normalised URL (``sqlite+aiosqlite``, ``psycopg``).

    :param url: A normalised SQLAlchemy URL.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    """Return ``url`` with any password masked, for logs and error messages.

    :param url: A SQLAlchemy URL.
    """
    return make_url(url).render_as_string(hide_password=True)


def sqlite_path(url: str) -> str | None:
    """Return the file of a SQLite URL, ``None`` for other backends.

    :param url: A SQLAlchemy URL.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    return parsed.database


def create_schema(conn: Connection, now: datetime) -> None:
    """Create the tables on first use, or check the version of existing ones.

    Runs inside the caller's write transaction (SQLite ``BEGIN IMMEDIATE``, PostgreSQL with the
    schema advisory lock held), so processes starting at once create the schema exactly once.

    :param conn: A connection inside a write transaction.
    :param now: The timestamp written beside the version.
    :raises QueueUnavailableError: when the database holds a newer schema than this release knows.
    """
    from sqlalchemy import func, insert, select

    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(PG_SCHEMA_LOCK_KEY)))
    metadata.create_all(conn, checkfirst=True)
    found = conn.execute(select(func.max(schema_version.c.version))).scalar()
    if found is None:
        conn.execute(insert(schema_version).values(version=SCHEMA_VERSION, created_at=now))
    elif found > SCHEMA_VERSION:
        # Unavailable rather than a programming error: the receiver answers 503 (senders retry
        # until the upgrade is done) and triggers keep retrying their polls.
        raise QueueUnavailableError(
            f"the event queue holds schema version {found}, newer than this release supports "
            f"({SCHEMA_VERSION}): upgrade airflow-provider-iterable"
        )
    # A version below SCHEMA_VERSION is migrated here by later releases.
