"""Wait for Iterable webhook events in the event queue, for deferred sensors and asset watchers.

The receiver stores every system and journey webhook in the event queue; this trigger reads the
queue asynchronously and fires on events that pass its filter
(:class:`~airflow_provider_iterable.event_queue.WebhookFilter`). It works in two modes:

- **sensor** (a deferred task): yield the first matching event in the window (received since
  ``since`` and/or with an id above ``after_id``), then stop; at its ``deadline``, if one is
  given, yield a timeout event instead. Sensors observe, they don't consume: two sensors waiting
  for the same event both see it, and a sensor rebuilt on another triggerer rescans its window,
  so its kwargs need no live cursor.
- **watcher** (inside an ``AssetWatcher``): start at the head of the queue the first time (no
  replay of history), yield every matching event in id order, and keep the position durably, in
  the asset state store Airflow injects (``self.asset_state_store``) and mirrored to the queue's
  consumer cursor so retention never purges an event the watcher has not reported.

Each mode runs on one of two paths. In Airflow's triggerer, every trigger of this class runs on a
*shared stream* (:mod:`.shared_stream`): all sensors on one queue share one poll loop, and each
watcher gets a stream of its own whose durable cursor moves only after Airflow has stored the
asset events derived from the events it passes. Elsewhere (``dag.test()``, a direct ``run()``)
the trigger polls by itself with the same semantics, except that a watcher advances its cursor
right after yielding.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Hashable
from functools import partial
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import SharedStreamProducer

from airflow_provider_iterable._values import KINDS, is_number, is_whole_number
from airflow_provider_iterable.event_queue import AsyncEventReader, StoredEvent, WebhookFilter
from airflow_provider_iterable.event_queue.filters import parse_since
from airflow_provider_iterable.event_queue.scan import scan_async
from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.triggers.polling import (
    DEFAULT_POLL_INTERVAL,
    Backoff,
    open_reader,
    retrying,
    until_deadline,
)
from airflow_provider_iterable.triggers.shared_stream import (
    QueueStreamProducer,
    StreamStart,
    sensor_stream_key,
    watcher_stream_key,
)
from airflow_provider_iterable.triggers.watcher_cursor import (
    default_consumer_name,
    start_position,
    write_cursor,
)

MODES = ("auto", "sensor", "watcher")


def success_event(event: StoredEvent) -> TriggerEvent:
    """Wrap a stored event in the trigger event sensors and asset watchers receive.

    :param event: The matched event.
    """
    return TriggerEvent({"status": "success", "event": event.to_dict()})


class IterableWebhookTrigger(BaseEventTrigger):
    """Fire on Iterable webhook events stored in the event queue.

    The filters are the public arguments; everything else has a constant default, so
    ``AssetWatcher(name="opens", trigger=IterableWebhookTrigger(event_name="emailOpen"))`` is a
    complete event-driven set-up (Airflow identifies a watcher's trigger by a hash of its
    arguments: nothing here is computed at construction).

    :param iterable_conn_id: Only events received through this connection's webhook URLs
        (``/webhooks/<conn_id>/...``). Default ``iterable_default``.
    :param kind: ``"system"`` (system webhooks) or ``"journey"`` (journey webhook tiles); ``None``
        for either.
    :param event_name: The payload's ``eventName``, e.g. ``emailOpen``, ``smsSend``.
    :param workflow_id: A journey event's journey id, or a system event's
        ``dataFields.workflowId``.
    :param match: Dotted payload path -> expected value, e.g.
        ``{"email": "a@example.com", "dataFields.campaignId": 42}``. Values compare as JSON,
        except that a string equals a number or boolean whose string form it is (form bodies
        carry only strings; templated values render as strings).
    :param since: ISO-8601 time: only events received at or after it (sensor mode's window).
    :param after_id: Only events with a larger queue id (sensor mode's window).
    :param poll_interval: Seconds between two reads of the queue while nothing arrives
        (PostgreSQL also wakes on its ``NOTIFY`` doorbell). Default 0.2.
    :param queue_url: SQLAlchemy URL of the event queue. Leave it ``None`` (the default) to read
        ``[iterable] queue_url`` at run time: trigger arguments are stored in Airflow's database
        and shown in logs, so a URL holding a password belongs in the configuration (or a
        secrets backend), not here.
    :param mode: ``"sensor"`` (yield the first match in the window, then stop), ``"watcher"``
        (yield every match, keep a durable cursor) or ``"auto"`` (the default): watcher when
        Airflow runs the trigger for an ``AssetWatcher``, sensor otherwise.
    :param consumer: Name of a watcher's durable cursor; by default derived from the filters.
        Give two watchers with identical filters distinct names if they must not share one.
    :param deadline: ISO-8601 time at which a sensor stops waiting and yields
        ``{"status": "timeout", "deadline": ...}`` (sensor mode only; a watcher never times out).
        The webhook sensors set it from their ``timeout`` when they defer, so the timeout holds
        wherever the trigger runs: in a restarted triggerer, and under ``dag.test()``, which runs
        the trigger itself and enforces no deferral timeout.
    :raises IterableConfigError: naming the parameter when an argument is unusable.
    """

    def __init__(
        self,
        *,
        iterable_conn_id: str = "iterable_default",
        kind: str | None = None,
        event_name: str | None = None,
        workflow_id: int | None = None,
        match: dict[str, Any] | None = None,
        since: str | None = None,
        after_id: int | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        queue_url: str | None = None,
        mode: str = "auto",
        consumer: str | None = None,
        deadline: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(iterable_conn_id, str) or not iterable_conn_id:
            raise IterableConfigError(
                f"iterable_conn_id must be a non-empty string, got {iterable_conn_id!r}"
            )
        if kind is not None and kind not in KINDS:
            raise IterableConfigError(f"kind must be one of {KINDS} or None, got {kind!r}")
        if event_name is not None and (not isinstance(event_name, str) or not event_name):
            raise IterableConfigError(f"event_name must be a non-empty string or None, got {event_name!r}")
        if workflow_id is not None and not is_whole_number(workflow_id):
            raise IterableConfigError(f"workflow_id must be an int or None, got {workflow_id!r}")
        if match is not None and (
            not isinstance(match, dict) or not all(isinstance(k, str) and k for k in match)
        ):
            raise IterableConfigError(
                f"match must be a dict of dotted payload paths to values, got {match!r}"
            )
        parse_since(since)
        if after_id is not None and not is_whole_number(after_id, minimum=0):
            raise IterableConfigError(f"after_id must be an int >= 0 or None, got {after_id!r}")
        if not is_number(poll_interval, maximum=3600, positive=True):
            raise IterableConfigError(
                f"poll_interval must be a number of seconds in (0, 3600], got {poll_interval!r}"
            )
        if queue_url is not None and (not isinstance(queue_url, str) or not queue_url):
            raise IterableConfigError("queue_url must be a non-empty SQLAlchemy URL string or None")
        if mode not in MODES:
            raise IterableConfigError(f"mode must be one of {MODES}, got {mode!r}")
        if consumer is not None and (not isinstance(consumer, str) or not consumer.strip()):
            raise IterableConfigError(f"consumer must be a non-empty string or None, got {consumer!r}")
        parse_since(deadline, name="deadline")
        self.iterable_conn_id = iterable_conn_id
        self.kind = kind
        self.event_name = event_name
        self.workflow_id = workflow_id
        self.match = match
        self.since = since
        self.after_id = after_id
        self.poll_interval = poll_interval
        self.queue_url = queue_url
        self.mode = mode
        self.consumer = consumer
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the exact keyword arguments (no secret unless passed in).

        ``deadline`` appears only when set, so a watcher's arguments (and Airflow's hash of them)
        are what they were before the argument existed.
        """
        kwargs: dict[str, Any] = {
            "iterable_conn_id": self.iterable_conn_id,
            "kind": self.kind,
            "event_name": self.event_name,
            "workflow_id": self.workflow_id,
            "match": self.match,
            "since": self.since,
            "after_id": self.after_id,
            "poll_interval": self.poll_interval,
            "queue_url": self.queue_url,
            "mode": self.mode,
            "consumer": self.consumer,
        }
        if self.deadline is not None:
            kwargs["deadline"] = self.deadline
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def __repr__(self) -> str:
        classpath, kwargs = self.serialize()
        if kwargs["queue_url"] is not None:
            kwargs["queue_url"] = "***"
        return self.repr(classpath, kwargs)

    # -- what the arguments mean -----------------------------------------------------------------

    @property
    def webhook_filter(self) -> WebhookFilter:
        """The filters, with the time window, as one :class:`WebhookFilter`."""
        return WebhookFilter(
            conn_id=self.iterable_conn_id,
            kind=self.kind,
            event_name=self.event_name,
            workflow_id=self.workflow_id,
            match=dict(self.match or {}),
            since=parse_since(self.since),
        )

    @property
    def effective_mode(self) -> str:
        """``"sensor"`` or ``"watcher"``: what ``"auto"`` means where the trigger runs."""
        if self.mode != "auto":
            return self.mode
        return "watcher" if self.asset_state_store is not None else "sensor"

    @property
    def consumer_name(self) -> str:
        """The watcher's durable cursor name (explicit, or derived from the filters)."""
        return self.consumer or default_consumer_name(self.serialize()[1])

    async def _new_reader(self) -> AsyncEventReader:
        return await open_reader(self.queue_url)

    async def poll_once(
        self, reader: AsyncEventReader | None = None, *, after_id: int | None = None, first_only: bool = False
    ) -> list[StoredEvent]:
        """Check the queue once and return the matching events in the window, id ascending.

        :param reader: The reader to use; a new one (closed afterwards) when ``None``.
        :param after_id: Only events with a larger id; default the trigger's ``after_id`` (or 0).
        :param first_only: Stop at the first match.
        """
        own = reader is None
        active = reader if reader is not None else await self._new_reader()
        try:
            start = (self.after_id or 0) if after_id is None else after_id
            found, _ = await scan_async(active, self.webhook_filter, after_id=start, first_only=first_only)
            return found
        finally:
            if own:
                await active.close()

    def _until_deadline(self, events: AsyncGenerator[TriggerEvent, None]) -> AsyncIterator[TriggerEvent]:
        """Pass on a sensor's events until its deadline (if any), then a timeout event."""
        deadline = parse_since(self.deadline, name="deadline")
        if deadline is None:
            return events
        return until_deadline(
            events, deadline, TriggerEvent({"status": "timeout", "deadline": self.deadline})
        )

    # -- polling alone (dag.test(), a direct run()) ----------------------------------------------

    def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll the queue by itself: the first match (sensor) or every match (watcher)."""
        if self.effective_mode == "watcher":
            return self._watch_alone()
        return self._until_deadline(self._sense_alone())

    async def _sense_alone(self) -> AsyncGenerator[TriggerEvent, None]:
        reader = await self._new_reader()
        backoff = Backoff(float(self.poll_interval), "trigger poll")
        flt = self.webhook_filter
        try:
            if self.since is None and self.after_id is None:
                # No window: only what arrives from now on.
                position = await retrying(reader.head_id, backoff)
            else:
                position = self.after_id or 0
            while True:
                try:
                    found, position = await scan_async(reader, flt, after_id=position, first_only=True)
                    backoff.ok()
                except Exception as exc:  # CancelledError is not an Exception: it ends the wait
                    await backoff.failed(exc)
                    continue
                if found:
                    # Release the reader before handing the event over: dag.test() never
                    # resumes a sensor's trigger after its first event.
                    await reader.close()
                    yield success_event(found[0])
                    return
                await reader.wait_for_insert(float(self.poll_interval))
        finally:
            await reader.close()

    async def _watch_alone(self) -> AsyncIterator[TriggerEvent]:
        reader = await self._new_reader()
        backoff = Backoff(float(self.poll_interval), "trigger poll")
        flt = self.webhook_filter
        store, consumer = self.asset_state_store, self.consumer_name
        try:
            position = await retrying(partial(start_position, store, reader, consumer), backoff)
            while True:
                try:
                    found, scanned = await scan_async(reader, flt, after_id=position)
                    backoff.ok()
                except Exception as exc:
                    await backoff.failed(exc)
                    continue
                for event in found:
                    yield success_event(event)
                    # Without Airflow's persistence acknowledgement, the cursor moves once the
                    # event has been handed over.
                    await retrying(partial(write_cursor, store, reader, consumer, event.id), backoff)
                position = scanned
                await reader.wait_for_insert(float(self.poll_interval))
        finally:
            await reader.close()

    # -- shared streams (Airflow's triggerer) ------------------------------------------------------

    def shared_stream_key(self) -> Hashable | None:
        """Share one poll per queue among sensors; give each watcher a stream (and cursor) of its own."""
        if self.effective_mode == "watcher":
            return watcher_stream_key(self.queue_url, self.consumer_name)
        return sensor_stream_key(self.queue_url)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
        """Build the shared poll loop (ack mode: watchers advance only after Airflow stored events).

        :param kwargs: The serialised keyword arguments of the trigger that opened the stream.
        """
        return QueueStreamProducer(kwargs)

    def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """Turn the shared stream into this trigger's events.

        :param shared_stream: The items of the stream this trigger subscribed to.
        """
        if self.effective_mode == "watcher":
            return self._watch_stream(shared_stream)
        return self._until_deadline(self._sense_stream(shared_stream))

    async def _sense_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncGenerator[TriggerEvent, None]:
        flt = self.webhook_filter
        backoff = Backoff(float(self.poll_interval), "sensor window scan")
        reader = await retrying(self._new_reader, backoff)
        try:
            # The stream carries only what is broadcast after this trigger subscribed: first scan
            # the window for what was there before (an event may have arrived before the defer).
            found, position = await retrying(
                partial(scan_async, reader, flt, after_id=self.after_id or 0, first_only=True), backoff
            )
            if found:
                yield success_event(found[0])
                return
            async for item in shared_stream:
                if isinstance(item, StreamStart):
                    item.join_as_sensor()
                    if item.head > position:
                        found, scanned = await retrying(
                            partial(scan_async, reader, flt, after_id=position, first_only=True), backoff
                        )
                        if found:
                            yield success_event(found[0])
                            return
                        position = max(scanned, item.head)
                    continue
                event: StoredEvent = item
                if event.id <= position:
                    continue  # already covered by this trigger's own scan
                position = event.id
                if flt.matches(event):
                    yield success_event(event)
                    return
        finally:
            await reader.close()

    async def _watch_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        # The stream's producer resumes from this watcher's cursor once it has joined, and moves
        # the cursor as Airflow confirms the asset events stored: here, only matching is left.
        flt = self.webhook_filter
        async for item in shared_stream:
            if isinstance(item, StreamStart):
                item.join_as_watcher(self.consumer_name, self.asset_state_store)
            elif flt.matches(item):
                yield success_event(item)


__all__ = ["DEFAULT_POLL_INTERVAL", "IterableWebhookTrigger", "success_event"]
