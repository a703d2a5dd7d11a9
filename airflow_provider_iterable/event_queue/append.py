"""The append path per backend: many events in one write transaction, a fixed number of statements.

Both run inside the caller's write transaction, which holds the writers' lock (SQLite
``BEGIN IMMEDIATE``; PostgreSQL's advisory lock, taken by :data:`PG_LOCK` before the id is
drawn), so the dedupe lookup and the insert cannot interleave with another writer's and ids
become visible in increasing order.

On PostgreSQL one statement (the same text for every batch, so prepared once) looks up earlier
copies, inserts the rest and rings the doorbell. On SQLite: the dedupe lookup, one
``executemany`` insert and ``last_insert_rowid()``.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from airflow_provider_iterable.event_queue.events import NewEvent
from airflow_provider_iterable.event_queue.schema import EVENTS_TABLE, NOTIFY_CHANNEL, events

#: Takes the writers' lock (PostgreSQL): held from before the id is drawn until the commit.
PG_LOCK = "SELECT pg_advisory_xact_lock(%(key)s)"

# SQLite allows at most 999 bound parameters per statement in older builds.
_IN_CHUNK = 500

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


def append_postgresql(
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


def append_sqlite(
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


__all__ = ["PG_LOCK", "append_postgresql", "append_sqlite"]
