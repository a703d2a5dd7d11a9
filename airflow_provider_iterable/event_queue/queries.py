"""The SQL that reads the queue and moves cursors, shared by the synchronous queue and the async reader.

Each builder returns a statement; the caller runs it on its own connection (``sqlite3``,
``aiosqlite`` or ``psycopg``), so both sides ask exactly the same questions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Select, and_, func, literal, select, union_all
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from airflow_provider_iterable._values import KINDS, is_whole_number
from airflow_provider_iterable.event_queue.events import StoredEvent
from airflow_provider_iterable.event_queue.filters import WebhookFilter
from airflow_provider_iterable.event_queue.schema import consumers, events
from airflow_provider_iterable.exceptions import IterableConfigError

#: The largest page a single fetch returns.
MAX_FETCH_LIMIT = 10_000

#: The longest consumer (cursor) name.
MAX_CONSUMER_NAME = 250


def fetch_query(where: WebhookFilter, *, after_id: int, limit: int, dialect: str) -> Select[Any]:
    """Build the SELECT of the events after ``after_id`` that pass ``where``'s indexed parts.

    Connection, kind, event name, journey and ``since`` are applied in SQL; ``where.match`` is
    not (no index can answer it): the caller checks each event with ``where.matches``.

    Three shapes, so that a poll costs what it returns, not the size of the queue:

    - a journey filter (``workflow_id``): a range of the ``(workflow_id, id)`` index;
    - a connection and an event name: a range of the ``(conn_id, kind, event_name, id)``
      index per kind (both kinds merged by id when ``kind`` is not given);
    - anything else: the primary key range after ``after_id`` (a trigger's poll from its
      cursor reads only the new rows).

    ``since`` becomes an id lower bound too (the smallest id received since then, found on the
    ``received_at`` index), which is exact: every event received since then has an id at least
    that large.

    SQLite's planner has no statistics on these tables, so on SQLite the columns that must not
    drive the plan are wrapped in a unary ``+`` (SQLite's documented way to keep an index out of a
    plan); PostgreSQL plans from its own statistics.

    :param where: The filter.
    :param after_id: Only events with a larger id (>= 0).
    :param limit: At most this many events (1 to :data:`MAX_FETCH_LIMIT`).
    :param dialect: ``"sqlite"`` or ``"postgresql"``.
    :raises IterableConfigError: naming ``after_id`` or ``limit`` when out of range.
    """
    if not isinstance(where, WebhookFilter):
        raise IterableConfigError(f"where must be a WebhookFilter, got {type(where).__name__}")
    if not is_whole_number(after_id, minimum=0):
        raise IterableConfigError(f"after_id must be an int >= 0, got {after_id!r}")
    if not is_whole_number(limit, minimum=1, maximum=MAX_FETCH_LIMIT):
        raise IterableConfigError(f"limit must be an int from 1 to {MAX_FETCH_LIMIT}, got {limit!r}")
    sqlite = dialect == "sqlite"

    def plain(column: Any) -> Any:
        if not sqlite:
            return column
        return UnaryExpression(column, operator=custom_op("+"), type_=column.type)

    lower: Any = literal(after_id, BigInteger())
    if where.since is not None:
        # "id + 0" keeps both planners from walking the primary key (from the oldest row)
        # looking for the first recent one: the (received_at, id) index answers it.
        first_since = (
            select(func.min(events.c.id + 0)).where(events.c.received_at >= where.since)
        ).scalar_subquery()
        # No event since then: a bound past every id, so the scan is empty.
        since_bound = func.coalesce(first_since - 1, literal(2**62, BigInteger()))
        lower = func.max(lower, since_bound) if sqlite else func.greatest(lower, since_bound)

    def shape(*, by_workflow: bool, by_name: bool, kind: str | None) -> Select[Any]:
        conditions: list[Any] = [events.c.id > lower]
        if where.since is not None:
            conditions.append(plain(events.c.received_at) >= where.since)
        if where.workflow_id is not None:
            column = events.c.workflow_id if by_workflow else plain(events.c.workflow_id)
            conditions.append(column == where.workflow_id)
        for name, value in (("conn_id", where.conn_id), ("kind", kind), ("event_name", where.event_name)):
            if value is not None:
                column = events.c[name] if by_name else plain(events.c[name])
                conditions.append(column == value)
        return select(events).where(and_(*conditions)).order_by(events.c.id).limit(limit)

    if where.workflow_id is not None:
        return shape(by_workflow=True, by_name=False, kind=where.kind)
    if where.conn_id is not None and where.event_name is not None:
        if where.kind is not None:
            return shape(by_workflow=False, by_name=True, kind=where.kind)
        parts = [shape(by_workflow=False, by_name=True, kind=kind).subquery() for kind in KINDS]
        merged = union_all(*(select(part) for part in parts)).subquery()
        return select(merged).order_by(merged.c.id).limit(limit)
    return shape(by_workflow=False, by_name=False, kind=where.kind)


def head_query() -> Select[Any]:
    """Build the SELECT of the newest event id (0 when the queue is empty)."""
    return select(func.coalesce(func.max(events.c.id), 0))


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


# -- cursors -------------------------------------------------------------------------------------


def check_cursor_args(name: str, event_id: int | None = None) -> None:
    """Reject a bad consumer name or cursor position with a message naming the parameter.

    :raises IterableConfigError: naming ``name`` or ``event_id``.
    """
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_CONSUMER_NAME:
        raise IterableConfigError(
            f"name must be a non-empty string of at most {MAX_CONSUMER_NAME} characters, got {name!r}"
        )
    if event_id is not None and not is_whole_number(event_id, minimum=0):
        raise IterableConfigError(f"event_id must be an int >= 0, got {event_id!r}")


def cursor_query(name: str) -> Select[Any]:
    """Build the SELECT of one consumer's cursor."""
    return select(consumers.c.last_id).where(consumers.c.name == name)


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
