"""The triggerer's shared streams over the event queue: one poll loop for many waiting triggers.

Airflow 3.3 (:mod:`airflow.triggers.shared_stream`) groups the triggers whose
``shared_stream_key()`` is equal, builds one producer per group with
``create_shared_stream_producer(kwargs)`` (``kwargs``: the serialised arguments of the trigger
that opened the group), broadcasts each item the producer's ``open_stream`` yields to every
trigger's ``filter_shared_stream``, and calls the producer's ``advance`` with an item once every
trigger that received it has moved past it and Airflow has stored the trigger events derived
from it (ack mode).

Sensors on one queue share one stream (:func:`sensor_stream_key`); each watcher has a stream of
its own (:func:`watcher_stream_key`), whose position is its durable cursor.

Every stream begins with a :class:`StreamStart` item, at the queue's head, through which each
trigger that receives it joins the stream. A sensor says it is one and scans its own window up to
that head. A watcher hands over what its serialised arguments cannot carry: the asset state store
Airflow injected into the trigger. The producer then resumes from the watcher's durable cursor,
and moves it in :meth:`QueueStreamProducer.advance` only past events whose asset events Airflow
has stored. A stream no watcher joined (every sensor stream) keeps no cursor.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from functools import partial
from typing import Any

from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

from airflow_provider_iterable.event_queue import AsyncEventReader
from airflow_provider_iterable.event_queue.filters import EVERYTHING
from airflow_provider_iterable.event_queue.scan import PAGE_SIZE
from airflow_provider_iterable.triggers.polling import DEFAULT_POLL_INTERVAL, Backoff, open_reader, retrying
from airflow_provider_iterable.triggers.watcher_cursor import start_position, write_cursor

log = logging.getLogger(__name__)


def _url_tag(queue_url: str | None) -> str:
    # The key is logged by the triggerer: never put a URL (it may hold a password) in it.
    if queue_url is None:
        return "config"
    return hashlib.sha256(queue_url.encode()).hexdigest()[:16]


def sensor_stream_key(queue_url: str | None) -> tuple[str, ...]:
    """Return the key of the stream every sensor on the queue at ``queue_url`` shares.

    :param queue_url: The trigger's ``queue_url`` (``None``: the configured queue).
    """
    return ("airflow-provider-iterable", "sensors", _url_tag(queue_url))


def watcher_stream_key(queue_url: str | None, consumer: str) -> tuple[str, ...]:
    """Return the key of one watcher's stream (its consumer's cursor is the stream's position).

    :param queue_url: The trigger's ``queue_url`` (``None``: the configured queue).
    :param consumer: The watcher's consumer name.
    """
    return ("airflow-provider-iterable", "watcher", _url_tag(queue_url), consumer)


class StreamStart:
    """The first item of every stream, and the one hand-off from a trigger to its stream's producer.

    Events after ``head`` follow it: a sensor that subscribed before the poll opened scans
    ``(its own scan position, head]`` itself, so nothing committed between its window scan and
    the poll's first read is missed.

    The producer cannot tell from the serialised arguments alone whether an ``"auto"`` trigger
    is a sensor or a watcher (only the asset state store Airflow injects into the instance says
    so), so it waits until the first trigger that receives this item joins through it, by
    :meth:`join_as_sensor` or :meth:`join_as_watcher`, or until Airflow reports the item passed
    by everyone (:meth:`QueueStreamProducer.advance`: every trigger left without reading it).
    Sensors and watchers never share a stream (their keys differ), so the first to join speaks
    for all.

    :param head: The queue's newest event id when the stream opened.
    """

    def __init__(self, head: int) -> None:
        self.head = head
        self.consumer: str | None = None
        self.store: Any = None
        self.joined = asyncio.Event()

    def join_as_sensor(self) -> None:
        """Say that this stream serves sensors: it goes on from the head and keeps no cursor."""
        self.joined.set()

    def join_as_watcher(self, consumer: str, store: Any) -> None:
        """Make this the stream of watcher ``consumer``, whose cursor lives in ``store``.

        :param consumer: The watcher's consumer name.
        :param store: The asset state store Airflow injected into the watcher trigger
            (``None`` outside Airflow: the cursor then lives in the queue alone).
        """
        if self.consumer is None:
            self.consumer, self.store = consumer, store
        elif consumer != self.consumer:  # pragma: no cover - one consumer per watcher stream key
            log.warning("Watcher %s joined the stream of watcher %s; ignored.", consumer, self.consumer)
        self.joined.set()

    def __repr__(self) -> str:
        return f"StreamStart(head={self.head})"


class QueueStreamProducer(SharedStreamProducer):
    """One poll loop over the queue, broadcasting every new event to a group's triggers.

    :param kwargs: The serialised arguments of the trigger that opened the stream.
    """

    def __init__(self, kwargs: Mapping[str, Any]) -> None:
        self.queue_url: str | None = kwargs.get("queue_url")
        self.poll_interval = float(kwargs.get("poll_interval") or DEFAULT_POLL_INTERVAL)
        # A stream opened by a trigger that is a sensor by its own arguments has no watcher
        # among its subscribers: it need not wait to learn whether one joins.
        self._may_have_watcher = kwargs.get("mode") != "sensor"
        self._start: StreamStart | None = None
        self._reader: AsyncEventReader | None = None
        self._blocked = False

    @property
    def consumer(self) -> str | None:
        """The consumer name of the watcher that joined this stream, if one did."""
        return self._start.consumer if self._start is not None else None

    async def _open_reader(self) -> AsyncEventReader:
        if self._reader is None:
            # Resolving the configured URL may run a ``_cmd``/``_secret`` lookup: not in the loop.
            self._reader = await open_reader(self.queue_url)
        return self._reader

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        """Yield the :class:`StreamStart`, then ``(event, its id)`` for every later event, for ever."""
        backoff = Backoff(self.poll_interval, "shared poll")
        reader = await retrying(self._open_reader, backoff)
        position = await retrying(reader.head_id, backoff)
        start = self._start = StreamStart(position)
        yield start, start
        if self._may_have_watcher:
            await start.joined.wait()
            consumer, store = start.consumer, start.store
            if consumer is not None:
                # The durable cursor, or (a new watcher) the head, written now so events that
                # arrive while the triggerer is down are delivered after it.
                position = await retrying(
                    partial(start_position, store, reader, consumer, head=start.head), backoff
                )
        while True:
            try:
                head = await reader.head_id()
                while head > position:
                    page = await reader.fetch(EVERYTHING, after_id=position, limit=PAGE_SIZE)
                    if not page:
                        break
                    for event in page:
                        position = event.id
                        yield event, event.id
                        # Hand the loop back between events: one event's fan-out to every
                        # waiting trigger is one step, a burst of a thousand is not.
                        await asyncio.sleep(0)
                backoff.ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await backoff.failed(exc)
                continue
            await reader.wait_for_insert(self.poll_interval)

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        """Move the joined watcher's durable cursor past the events Airflow confirmed stored.

        :param batch: Resolved items in order: the :class:`StreamStart`, then events with their
            ids as broker payloads.
        """
        last: int | None = None
        for item in batch:
            if isinstance(item.broker_payload, StreamStart):
                # Everyone has passed the start: a trigger that read it has joined already;
                # if none did, none will.
                item.broker_payload.joined.set()
                continue
            if self.consumer is None or self._blocked:
                continue
            if not item.outcome.is_clean:
                # Not stored by Airflow (ack timeout, lost persist): the durable cursor stays
                # before it so a restarted triggerer delivers it again (at-least-once).
                log.error(
                    "Event %s was not confirmed stored by Airflow (%s); watcher %s keeps its cursor "
                    "before it so it is delivered again after a restart.",
                    item.broker_payload,
                    item.outcome,
                    self.consumer,
                )
                self._blocked = True
                break
            last = int(item.broker_payload)
        if last is None or self._start is None or self.consumer is None:
            return
        reader = await self._open_reader()
        try:
            await write_cursor(self._start.store, reader, self.consumer, last)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Left where it was, the cursor only means a redelivery after a restart; the next
            # advance writes a later position.
            log.warning("Could not store watcher %s's cursor at %d: %s", self.consumer, last, exc)

    async def aclose(self) -> None:
        """Close the reader."""
        if self._reader is not None:
            await self._reader.close()


__all__ = ["QueueStreamProducer", "StreamStart", "sensor_stream_key", "watcher_stream_key"]
