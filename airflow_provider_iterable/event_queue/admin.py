"""Operator's tools over the event queue: what arrived lately, how big it is, what the payloads look like.

The ``iterable-webhooks`` console script (``tail``, ``stats``, ``purge``, ``infer-schema``)
calls these; they return data and never print, so they are as usable from Python as from a
shell.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select

from airflow_provider_iterable._values import is_whole_number
from airflow_provider_iterable.event_queue.events import StoredEvent
from airflow_provider_iterable.event_queue.filters import WebhookFilter
from airflow_provider_iterable.event_queue.queries import row_to_event
from airflow_provider_iterable.event_queue.schema import consumers, events, safe_url, sqlite_path
from airflow_provider_iterable.event_queue.store import EventQueue
from airflow_provider_iterable.exceptions import IterableConfigError

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: The most events ``tail`` and ``infer_schema`` read at once.
MAX_SAMPLE = 10_000


def _check_limit(limit: int) -> None:
    if not is_whole_number(limit, minimum=1, maximum=MAX_SAMPLE):
        raise IterableConfigError(f"limit must be an int from 1 to {MAX_SAMPLE}, got {limit!r}")


def _latest(
    queue: EventQueue,
    *,
    limit: int,
    conn_id: str | None = None,
    kind: str | None = None,
    event_name: str | None = None,
    workflow_id: int | None = None,
) -> list[StoredEvent]:
    """Return the newest ``limit`` events matching the filters, oldest first."""
    _check_limit(limit)
    # The same filter (and checks) as a trigger's, newest first instead of after a cursor.
    where = WebhookFilter(conn_id=conn_id, kind=kind, event_name=event_name, workflow_id=workflow_id)
    conditions = [
        column == value
        for column, value in (
            (events.c.conn_id, where.conn_id),
            (events.c.kind, where.kind),
            (events.c.event_name, where.event_name),
            (events.c.workflow_id, where.workflow_id),
        )
        if value is not None
    ]
    query = select(events).where(and_(True, *conditions)).order_by(events.c.id.desc()).limit(limit)
    with queue._read("tail") as conn:
        newest_first = [row_to_event(row) for row in conn.execute(query)]
    return newest_first[::-1]


def tail(
    queue: EventQueue,
    *,
    limit: int = 20,
    conn_id: str | None = None,
    kind: str | None = None,
    event_name: str | None = None,
    workflow_id: int | None = None,
) -> list[StoredEvent]:
    """Return the newest ``limit`` events matching the filters, oldest first (as a log reads).

    :param queue: The queue to read.
    :param limit: How many events (1 to 10,000).
    :param conn_id: Only events that came through this connection.
    :param kind: Only ``"system"`` or only ``"journey"`` events.
    :param event_name: Only events with this ``eventName``.
    :param workflow_id: Only events of this journey.
    """
    return _latest(
        queue, limit=limit, conn_id=conn_id, kind=kind, event_name=event_name, workflow_id=workflow_id
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def stats(queue: EventQueue) -> dict[str, Any]:
    """Summarise the queue: row counts, age range, consumers, size on disk.

    :param queue: The queue to inspect.
    :return: A JSON-safe dict: ``url`` (password masked), ``dialect``, ``total``, ``head_id``,
        ``oldest_received_at`` / ``newest_received_at`` (ISO-8601 UTC or None), ``by_conn_id``,
        ``by_kind``, ``by_event_name`` (``None`` names counted under ``"(none)"``), ``groups``
        (one entry per connection, kind and event name), ``consumers`` (name, last id, how far
        behind the head, last update) and ``size_bytes`` (database plus WAL files for SQLite,
        the tables with their indexes for PostgreSQL).
    """
    with queue._read("stats") as conn:
        total, oldest, newest, head = conn.execute(
            select(
                func.count(),
                func.min(events.c.received_at),
                func.max(events.c.received_at),
                func.coalesce(func.max(events.c.id), 0),
            )
        ).one()
        grouped = conn.execute(
            select(events.c.conn_id, events.c.kind, events.c.event_name, func.count())
            .group_by(events.c.conn_id, events.c.kind, events.c.event_name)
            .order_by(events.c.conn_id, events.c.kind, events.c.event_name)
        ).all()
        cursor_rows = conn.execute(
            select(consumers.c.name, consumers.c.last_id, consumers.c.updated_at).order_by(consumers.c.name)
        ).all()
        size: int | None = None
        if queue.dialect == "postgresql":
            size = int(
                conn.execute(
                    select(
                        func.pg_total_relation_size(events.name) + func.pg_total_relation_size(consumers.name)
                    )
                ).scalar()
                or 0
            )
    if queue.dialect == "sqlite":
        path = sqlite_path(queue.url) or ""
        size = sum(os.path.getsize(p) for p in (path, f"{path}-wal", f"{path}-shm") if os.path.exists(p))
    by_conn: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    by_name: dict[str, int] = {}
    groups = []
    for conn_id, kind, event_name, count in grouped:
        by_conn[conn_id] = by_conn.get(conn_id, 0) + count
        by_kind[kind] = by_kind.get(kind, 0) + count
        label = event_name if event_name is not None else "(none)"
        by_name[label] = by_name.get(label, 0) + count
        groups.append({"conn_id": conn_id, "kind": kind, "event_name": event_name, "count": count})
    return {
        "url": safe_url(queue.url),
        "dialect": queue.dialect,
        "total": int(total),
        "head_id": int(head),
        "oldest_received_at": _iso(oldest),
        "newest_received_at": _iso(newest),
        "by_conn_id": by_conn,
        "by_kind": by_kind,
        "by_event_name": by_name,
        "groups": groups,
        "consumers": [
            {
                "name": name,
                "last_id": int(last_id),
                "behind": max(0, int(head) - int(last_id)),
                "updated_at": _iso(updated_at),
            }
            for name, last_id, updated_at in cursor_rows
        ],
        "size_bytes": size,
    }


# -- schema inference -----------------------------------------------------------------------


class _Shape:
    """What has been seen at one place in the sampled payloads."""

    def __init__(self) -> None:
        self.types: set[str] = set()
        self.objects = 0  # how many samples were objects here
        self.properties: dict[str, _Shape] = {}
        self.present: dict[str, int] = {}
        self.items: _Shape | None = None

    def add(self, value: Any) -> None:
        if value is None:
            self.types.add("null")
        elif isinstance(value, bool):
            self.types.add("boolean")
        elif isinstance(value, int):
            self.types.add("integer")
        elif isinstance(value, float):
            self.types.add("number")
        elif isinstance(value, str):
            self.types.add("string")
        elif isinstance(value, dict):
            self.types.add("object")
            self.objects += 1
            for key, item in value.items():
                self.properties.setdefault(key, _Shape()).add(item)
                self.present[key] = self.present.get(key, 0) + 1
        elif isinstance(value, list):
            self.types.add("array")
            if self.items is None:
                self.items = _Shape()
            for item in value:
                self.items.add(item)
        else:  # pragma: no cover - json.loads yields nothing else
            raise TypeError(f"not a JSON value: {type(value).__name__}")

    def schema(self) -> dict[str, Any]:
        types = set(self.types)
        if {"integer", "number"} <= types:
            types.discard("integer")  # every integer is a number
        out: dict[str, Any] = {}
        ordered = [
            t for t in ("object", "array", "string", "number", "integer", "boolean", "null") if t in types
        ]
        if len(ordered) == 1:
            out["type"] = ordered[0]
        elif ordered:
            out["type"] = ordered
        if "object" in types:
            out["properties"] = {key: shape.schema() for key, shape in sorted(self.properties.items())}
            required = sorted(key for key, seen in self.present.items() if seen == self.objects)
            if required:
                out["required"] = required
        if "array" in types and self.items is not None and self.items.types:
            out["items"] = self.items.schema()
        return out


def schema_from_payloads(payloads: Iterable[dict[str, Any]], *, title: str | None = None) -> dict[str, Any]:
    """Return a JSON Schema (draft 2020-12) that every one of ``payloads`` validates against.

    Types are merged across samples (an integer field that is sometimes fractional becomes
    ``number``; one that is sometimes null gets ``["integer", "null"]``); ``required`` lists the
    fields present in every sample; objects are described recursively and arrays by the merged
    type of their items. Unknown extra fields stay allowed, since Iterable adds fields over time.

    :param payloads: Sample payloads (JSON objects).
    :param title: An optional ``title`` for the schema.
    :raises IterableConfigError: when there is no sample.
    """
    root = _Shape()
    count = 0
    for payload in payloads:
        root.add(payload)
        count += 1
    if count == 0:
        raise IterableConfigError("no payloads to infer a schema from")
    body = root.schema()
    schema: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT}
    if title:
        schema["title"] = title
    schema["description"] = f"Inferred from {count} stored webhook payload{'s' if count != 1 else ''}."
    schema.update(body)
    return schema


def infer_schema(
    queue: EventQueue,
    *,
    event_name: str | None = None,
    workflow_id: int | None = None,
    conn_id: str | None = None,
    limit: int = 500,
) -> dict[str, Any]:
    """Infer a JSON Schema (draft 2020-12) from the newest stored payloads matching the filters.

    The result can be given to a webhook sensor as its ``payload_schema`` to fail fast on a
    payload that cannot serve the downstream tasks.

    :param queue: The queue to sample.
    :param event_name: Only events with this ``eventName``.
    :param workflow_id: Only events of this journey.
    :param conn_id: Only events that came through this connection.
    :param limit: Sample at most this many of the newest matching events (1 to 10,000).
    :raises IterableConfigError: when no stored event matches.
    """
    sample = _latest(queue, limit=limit, conn_id=conn_id, event_name=event_name, workflow_id=workflow_id)
    if not sample:
        filters = ", ".join(
            f"{name}={value!r}"
            for name, value in (
                ("conn_id", conn_id),
                ("event_name", event_name),
                ("workflow_id", workflow_id),
            )
            if value is not None
        )
        raise IterableConfigError(
            f"no stored events match ({filters or 'no filter'}): nothing to infer a schema from"
        )
    parts = [
        f"eventName {event_name}" if event_name else None,
        f"journey {workflow_id}" if workflow_id else None,
    ]
    title = "Iterable webhook payload" + (": " + ", ".join(p for p in parts if p) if any(parts) else "")
    return schema_from_payloads((event.payload for event in sample), title=title)


__all__ = ["JSON_SCHEMA_DIALECT", "infer_schema", "schema_from_payloads", "stats", "tail"]
