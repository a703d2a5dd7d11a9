"""The durable webhook event queue: an append-only log in SQLite (default) or PostgreSQL.

The receiver writes with :class:`EventQueue`; triggers read with :class:`AsyncEventReader`.
"""

from __future__ import annotations

from airflow_provider_iterable.event_queue._common import notice_backend
from airflow_provider_iterable.event_queue.events import NewEvent, QueueUnavailableError, StoredEvent
from airflow_provider_iterable.event_queue.reader import AsyncEventReader
from airflow_provider_iterable.event_queue.store import EventQueue

__all__ = [
    "AsyncEventReader",
    "EventQueue",
    "NewEvent",
    "QueueUnavailableError",
    "StoredEvent",
    "notice_backend",
]
