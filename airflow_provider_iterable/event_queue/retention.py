"""Bounded retention: delete what is older than the retention period and past every live cursor.

A cursor holds events back only while its consumer is alive: one not moved for longer than the
retention period (a watcher removed from its DAG) stops holding them, with a warning, so a
forgotten consumer cannot make the queue grow for ever.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select

from airflow_provider_iterable import config
from airflow_provider_iterable._values import is_number
from airflow_provider_iterable.event_queue.schema import consumers, events
from airflow_provider_iterable.exceptions import IterableConfigError

if TYPE_CHECKING:
    from airflow_provider_iterable.event_queue.store import EventQueue

log = logging.getLogger(__name__)

#: Rows deleted per purge transaction: small enough that receivers never wait long on the lock.
PURGE_BATCH = 2_000


def purge(queue: EventQueue, *, retention_days: float | None = None) -> int:
    """Delete events older than the retention period that every live cursor has passed.

    Deletes run in batches of :data:`PURGE_BATCH` rows, each its own short transaction.

    :param queue: The queue to purge.
    :param retention_days: Keep events younger than this many days; ``None`` reads
        ``[iterable] webhook_retention_days``.
    :return: The number of events deleted.
    :raises IterableConfigError: naming ``retention_days`` when it is not a number >= 0.
    """
    if retention_days is None:
        retention_days = config.webhook_retention_days()
    if not is_number(retention_days, minimum=0):
        raise IterableConfigError(f"retention_days must be a number of days >= 0, got {retention_days!r}")
    cutoff = queue._now() - timedelta(days=float(retention_days))
    with queue._read("purge") as conn:
        # "id + 0": from the (received_at, id) index, not a walk of the primary key.
        upto = conn.execute(select(func.max(events.c.id + 0)).where(events.c.received_at < cutoff)).scalar()
        cursor_rows = conn.execute(
            select(consumers.c.name, consumers.c.last_id, consumers.c.updated_at)
        ).all()
    if upto is None:
        return 0
    for name, last_id, updated_at in cursor_rows:
        if updated_at < cutoff:
            log.warning(
                "Consumer %r has not moved its cursor (at event %d) since %s, longer than the "
                "retention period of %s days: it no longer holds events back from the purge.",
                name,
                last_id,
                updated_at.isoformat(),
                retention_days,
            )
        else:
            upto = min(upto, int(last_id))
    deleted = 0
    while True:
        with queue._write("purge") as conn:
            doomed = (
                select(events.c.id)
                .where(events.c.id <= upto, events.c.received_at < cutoff)
                .order_by(events.c.id)
                .limit(PURGE_BATCH)
                .scalar_subquery()
            )
            count = conn.execute(delete(events).where(events.c.id.in_(doomed))).rowcount or 0
        deleted += count
        if count < PURGE_BATCH:
            break
    if deleted:
        log.info("Purged %d webhook events received before %s.", deleted, cutoff.isoformat())
    return deleted


__all__ = ["PURGE_BATCH", "purge"]
