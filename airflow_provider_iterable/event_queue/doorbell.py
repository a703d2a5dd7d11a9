"""PostgreSQL's ``NOTIFY`` doorbell: one listening connection per queue and event loop, for every waiter.

Every commit that stores events rings ``NOTIFY iterable_events`` (see :mod:`.append`). A waiting
reader wakes on it instead of at its next poll, which is what keeps PostgreSQL's wake-up latency
in milliseconds. The doorbell is a hint only: readers always ``fetch`` after a wait, and while the
channel cannot be opened their waits simply time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.engine import make_url

from airflow_provider_iterable.event_queue.schema import NOTIFY_CHANNEL, safe_url

log = logging.getLogger(__name__)

#: Longest pause between attempts to re-open the PostgreSQL notification channel.
DOORBELL_MAX_BACKOFF = 30.0


class Doorbell:
    """One ``LISTEN iterable_events`` connection per queue and event loop, fanned out to waiters.

    A thousand waiting sensors share it (not a thousand PostgreSQL connections). ``rings``
    counts the notifications; a waiter remembers the count it last saw, so a ring between two
    waits is not lost. Each time the channel opens (first use, or after a server restart) it
    rings once, since commits made before that were not announced.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.rings = 0
        self.listening = False
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="iterable-queue-doorbell")

    async def _ring(self) -> None:
        async with self._changed:
            self.rings += 1
            self._changed.notify_all()

    async def _run(self) -> None:
        import psycopg

        conninfo = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        backoff = 0.5
        failing = False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    conninfo,
                    autocommit=True,
                    connect_timeout=10,
                    application_name="airflow-provider-iterable-listener",
                )
                try:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.listening = True
                    if failing:
                        log.info("Listening to the event queue %s again.", safe_url(self.url))
                    failing, backoff = False, 0.5
                    # Commits made before the channel was open were not announced: ring once, so
                    # every waiter polls again now rather than at its timeout.
                    await self._ring()
                    async for _notify in conn.notifies():
                        await self._ring()
                finally:
                    self.listening = False
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Waiters keep working meanwhile: their waits time out and they poll.
                log_at = logging.DEBUG if failing else logging.WARNING
                log.log(
                    log_at,
                    "Cannot listen to the event queue %s (%s: %s); polling until it is back.",
                    safe_url(self.url),
                    type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                )
                failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, DOORBELL_MAX_BACKOFF)

    async def wait(self, seen: int, timeout: float) -> int | None:
        """Wait until ``rings`` exceeds ``seen``; return the new count, or None at the timeout."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.rings > seen), timeout)
            except asyncio.TimeoutError:
                return None
            return self.rings

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


__all__ = ["DOORBELL_MAX_BACKOFF", "Doorbell"]
