"""The durable webhook event queue: an append-only log in SQLite (default) or PostgreSQL.

The receiver writes with :class:`EventQueue`; triggers read with :class:`AsyncEventReader`.
Both read through one :class:`WebhookFilter` (:mod:`.filters`), scanned by :mod:`.scan`.

Modules: :mod:`.events` (the value types), :mod:`.schema` (tables, URLs), :mod:`.engines`
(connections per backend), :mod:`.errors` (storage failures), :mod:`.append` (the write path per
backend), :mod:`.queries` (reads and cursors), :mod:`.retention` (purges), :mod:`.doorbell`
(PostgreSQL's ``NOTIFY``), :mod:`.notice` (the one-host notice for SQLite), :mod:`.admin`
(the command line's questions).
"""

from __future__ import annotations

from airflow_provider_iterable.event_queue.events import NewEvent, QueueUnavailableError, StoredEvent
from airflow_provider_iterable.event_queue.filters import WebhookFilter
from airflow_provider_iterable.event_queue.notice import notice_backend
from airflow_provider_iterable.event_queue.reader import AsyncEventReader
from airflow_provider_iterable.event_queue.store import EventQueue

__all__ = [
    "AsyncEventReader",
    "EventQueue",
    "NewEvent",
    "QueueUnavailableError",
    "StoredEvent",
    "WebhookFilter",
    "notice_backend",
]
