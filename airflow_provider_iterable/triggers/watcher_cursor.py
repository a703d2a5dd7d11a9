"""An asset watcher's durable position: where it resumes after a restart, and what purges must keep.

The cursor (the id of the last event Airflow stored an asset event for) lives in the asset state
store Airflow 3.3 injects into watcher triggers, under ``iterable_webhook_cursor:<consumer>``,
and is mirrored to the queue's consumer cursor, which holds events back from the purge until the
watcher has passed them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from airflow_provider_iterable.event_queue import AsyncEventReader

#: Prefix of the durable cursor's key in the asset state store and of the consumer name in the queue.
CURSOR_KEY_PREFIX = "iterable_webhook_cursor"


def default_consumer_name(kwargs: Mapping[str, Any]) -> str:
    """Derive a watcher's consumer name from its filters (stable across parses and restarts).

    :param kwargs: The trigger's serialised keyword arguments.
    """
    basis = {k: kwargs.get(k) for k in ("iterable_conn_id", "kind", "event_name", "workflow_id", "match")}
    digest = hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return f"asset-watcher-{digest}"


def _store_accessors(store: Any) -> list[Any]:
    """Return one accessor per watched asset (a trigger shared by two watchers watches both)."""
    if store is None:
        return []
    accessors = [*getattr(store, "_by_name", {}).values(), *getattr(store, "_by_uri", {}).values()]
    return accessors or [store]


async def read_cursor(store: Any, reader: AsyncEventReader, consumer: str) -> int | None:
    """Return the durable cursor: the asset state store first, else the queue's consumer cursor.

    :param store: The asset state store Airflow injected (``None`` outside a watcher).
    :param reader: The queue.
    :param consumer: The watcher's consumer name.
    """
    key = f"{CURSOR_KEY_PREFIX}:{consumer}"
    positions = []
    for accessor in _store_accessors(store):
        value = await accessor.aget(key)
        if value is not None:
            positions.append(int(value))
    if positions:
        # Several assets share this trigger: resume from the one furthest behind.
        return min(positions)
    return await reader.get_cursor(consumer)


async def write_cursor(store: Any, reader: AsyncEventReader, consumer: str, event_id: int) -> None:
    """Store the cursor in the asset state store and mirror it to the queue (holds back purges).

    :param store: The asset state store Airflow injected (``None`` outside a watcher).
    :param reader: The queue.
    :param consumer: The watcher's consumer name.
    :param event_id: The last event Airflow stored (or, outside Airflow's ack, handed over).
    """
    key = f"{CURSOR_KEY_PREFIX}:{consumer}"
    for accessor in _store_accessors(store):
        await accessor.aset(key, event_id)
    await reader.set_cursor(consumer, event_id)


async def start_position(
    store: Any, reader: AsyncEventReader, consumer: str, *, head: int | None = None
) -> int:
    """Return where a watcher starts: its durable cursor, or the first time the queue's head.

    A new watcher does not replay history. Its head position is written at once, so events
    arriving while the triggerer is down are delivered after it.

    :param store: The asset state store Airflow injected (``None`` outside a watcher).
    :param reader: The queue.
    :param consumer: The watcher's consumer name.
    :param head: The head to start at when there is no cursor; default the queue's head now.
    """
    stored = await read_cursor(store, reader, consumer)
    if stored is not None:
        return stored
    if head is None:
        head = await reader.head_id()
    await write_cursor(store, reader, consumer, head)
    return head


__all__ = ["CURSOR_KEY_PREFIX", "default_consumer_name", "read_cursor", "start_position", "write_cursor"]
