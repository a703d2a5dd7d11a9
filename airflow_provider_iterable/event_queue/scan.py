"""Scan the queue for the events that pass a filter: the one check sensors and triggers share.

A scan reads pages from a position (an event id), keeps the events that pass the whole filter,
and says how far it got, so the next scan starts there. The asynchronous form serves triggers
(the triggerer's event loop); the synchronous form serves a sensor's ``poke`` and its check
before deferring. Both walk the same pages and stop at the same place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_iterable.event_queue.events import StoredEvent
from airflow_provider_iterable.event_queue.filters import WebhookFilter

if TYPE_CHECKING:
    from airflow_provider_iterable.event_queue.reader import AsyncEventReader
    from airflow_provider_iterable.event_queue.store import EventQueue

#: Events read per query while scanning.
PAGE_SIZE = 500


def _take_matches(
    page: list[StoredEvent],
    where: WebhookFilter,
    found: list[StoredEvent],
    position: int,
    *,
    first_only: bool,
    head: int,
) -> tuple[int, bool]:
    """Append the events of one page that pass ``where`` to ``found``: the step both scans share.

    :return: The scan position after this page, and whether the scan is over.
    """
    for event in page:
        position = event.id
        if where.matches(event):
            found.append(event)
            if first_only:
                return position, True
    if len(page) < PAGE_SIZE:
        # Ids become visible in increasing order, so the last, short page covered every event up
        # to the head read before it.
        return max(position, head), True
    return position, False


async def scan_async(
    reader: AsyncEventReader, where: WebhookFilter, *, after_id: int = 0, first_only: bool = False
) -> tuple[list[StoredEvent], int]:
    """Scan the queue once for events after ``after_id`` that pass ``where``.

    :param reader: The queue to read.
    :param where: The filter the events must pass (all of it, ``match`` included).
    :param after_id: Only events with a larger id.
    :param first_only: Stop at the first match.
    :return: The matching events in id order (only the first with ``first_only``) and the id up
        to which the queue has been scanned, to pass as ``after_id`` next time.
    """
    head = await reader.head_id()
    if head <= after_id:
        return [], after_id
    found: list[StoredEvent] = []
    position = after_id
    while True:
        page = await reader.fetch(where, after_id=position, limit=PAGE_SIZE)
        position, done = _take_matches(page, where, found, position, first_only=first_only, head=head)
        if done:
            return found, position


def scan_sync(
    queue: EventQueue, where: WebhookFilter, *, after_id: int = 0, first_only: bool = False
) -> tuple[list[StoredEvent], int]:
    """Do what :func:`scan_async` does through the synchronous :class:`EventQueue` (poke mode).

    :param queue: The queue to read.
    :param where: The filter the events must pass.
    :param after_id: Only events with a larger id.
    :param first_only: Stop at the first match.
    """
    head = queue.head_id()
    if head <= after_id:
        return [], after_id
    found: list[StoredEvent] = []
    position = after_id
    while True:
        page = queue.fetch(where, after_id=position, limit=PAGE_SIZE)
        position, done = _take_matches(page, where, found, position, first_only=first_only, head=head)
        if done:
            return found, position


__all__ = ["PAGE_SIZE", "scan_async", "scan_sync"]
