"""Wait for Iterable webhook events in the event queue, for deferred sensors and asset watchers.

The receiver stores every system and journey webhook in the event queue; this trigger reads the
queue asynchronously (:class:`~airflow_provider_iterable.event_queue.AsyncEventReader`) and fires on
events that match its filters. It works in two modes:

- **sensor** (a deferred task): yield the first matching event in the window (received since
  ``since`` and/or with an id above ``after_id``), then stop. Sensors observe, they don't consume:
  two sensors waiting for the same event both see it, and a sensor rebuilt on another triggerer
  rescans its window, so its kwargs need no live cursor.
- **watcher** (inside an ``AssetWatcher``): start at the head of the queue the first time (no
  replay of history), yield every matching event in id order, and keep the position durably, in
  the asset state store Airflow injects (``self.asset_state_store``) and mirrored to the queue's
  consumer cursor so retention never purges an event the watcher has not reported.

In Airflow's triggerer every trigger of this class runs on a *shared stream*: all sensors waiting
on one queue share one poll loop, and each watcher gets a stream of its own whose durable cursor
moves only after Airflow has stored the asset events derived from the events it passes (ack mode,
:mod:`airflow.triggers.shared_stream`). Outside the triggerer's shared-stream path
(``dag.test()``, a direct ``run()``) the trigger polls by itself with the same semantics, except
that a watcher advances its cursor right after yielding.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

from airflow_provider_iterable.event_queue import AsyncEventReader, StoredEvent, notice_backend

if TYPE_CHECKING:
    from airflow_provider_iterable.event_queue import EventQueue

log = logging.getLogger(__name__)

#: Seconds between two polls of the queue when nothing arrives (PostgreSQL wakes earlier, on
#: the queue's ``NOTIFY`` doorbell).
DEFAULT_POLL_INTERVAL = 0.2
#: Longest wait between two attempts after the queue failed to answer.
MAX_RETRY_BACKOFF = 10.0
#: Events read per query while scanning a window.
PAGE_SIZE = 500

MODES = ("auto", "sensor", "watcher")
KINDS = ("system", "journey")

#: Prefix of the durable cursor's key in the asset state store and of the consumer name in the queue.
CURSOR_KEY_PREFIX = "iterable_webhook_cursor"

_MISSING = object()


# -- matching -------------------------------------------------------------------------------------


def lookup_path(payload: Any, path: str) -> Any:
    """Return the value at a dotted ``path`` in ``payload``, or ``_MISSING`` when there is none.

    A segment that is a non-negative integer indexes a list (``items.0.sku``).

    :param payload: The JSON value to walk.
    :param path: Dot-separated keys (and list indexes).
    """
    current = payload
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return _MISSING
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def values_match(actual: Any, expected: Any) -> bool:
    """Compare a payload value with an expected one as JSON values.

    JSON equality (so ``True`` is not ``1`` and ``1`` equals ``1.0``), except that a string in the
    payload equals a number or boolean whose string form it is: form-encoded journey bodies carry
    only strings, so ``"42"`` matches ``42`` and ``"true"`` matches ``True``. The same holds the
    other way round, because a sensor's templated ``match`` values render as strings: an
    expected ``"42"`` matches a payload's ``42``.

    :param actual: The value found in the payload.
    :param expected: The value a filter asks for.
    """
    if isinstance(expected, str) and isinstance(actual, bool | int | float):
        return values_match(expected, actual)
    if isinstance(expected, bool) or isinstance(actual, bool):
        if isinstance(expected, bool) and isinstance(actual, bool):
            return actual is expected
        if isinstance(expected, bool) and isinstance(actual, str):
            return actual.strip().lower() == ("true" if expected else "false")
        return False
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return bool(actual == expected)
    if isinstance(expected, int | float) and isinstance(actual, str):
        try:
            number = float(actual.strip())
        except ValueError:
            return False
        return math.isfinite(number) and number == expected
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return set(expected) == set(actual) and all(values_match(actual[k], expected[k]) for k in expected)
    if isinstance(expected, list | tuple) and isinstance(actual, list | tuple):
        return len(expected) == len(actual) and all(
            values_match(a, e) for a, e in zip(actual, expected, strict=True)
        )
    if isinstance(expected, Mapping | list | tuple) or isinstance(actual, Mapping | list | tuple):
        return False
    return bool(actual == expected)


def parse_since(since: str | None, *, name: str = "since") -> datetime | None:
    """Parse an ISO-8601 timestamp; one without an offset is taken as UTC.

    :param since: The timestamp, or ``None`` (returned as ``None``).
    :param name: The parameter's name, for the error message.
    :raises ValueError: naming ``name`` when the text is not an ISO-8601 timestamp.
    """
    if since is None:
        return None
    if not isinstance(since, str):
        raise ValueError(f"{name} must be an ISO-8601 string or None, got {since!r}")
    try:
        parsed = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be an ISO-8601 timestamp, got {since!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


@dataclass(frozen=True)
class WebhookFilter:
    """What a waiting sensor or watcher is looking for.

    :param conn_id: The Airflow connection (Iterable project) the event came through.
    :param kind: ``"system"``, ``"journey"`` or ``None`` for either.
    :param event_name: The payload's ``eventName`` (``emailOpen``, ``smsSend``, ...).
    :param workflow_id: A journey event's id, or a system event's ``dataFields.workflowId``.
    :param match: Dotted payload path -> expected value (see :func:`values_match`).
    :param since: Only events received at or after this time.
    """

    conn_id: str | None = None
    kind: str | None = None
    event_name: str | None = None
    workflow_id: int | None = None
    match: Mapping[str, Any] = field(default_factory=dict)
    since: datetime | None = None

    def fetch_filters(self) -> dict[str, Any]:
        """Return the filters the queue applies in SQL (indexed columns)."""
        return {
            "received_since": self.since,
            "conn_id": self.conn_id,
            "kind": self.kind,
            "event_name": self.event_name,
            "workflow_id": self.workflow_id,
        }

    def matches(self, event: StoredEvent) -> bool:
        """Return whether ``event`` passes every filter (the SQL ones included, for raw streams).

        :param event: A stored event.
        """
        if self.conn_id is not None and event.conn_id != self.conn_id:
            return False
        if self.kind is not None and event.kind != self.kind:
            return False
        if self.event_name is not None and event.event_name != self.event_name:
            return False
        if self.since is not None and event.received_at < self.since:
            return False
        if self.workflow_id is not None and event.workflow_id != self.workflow_id:
            found = lookup_path(event.payload, "dataFields.workflowId")
            if found is _MISSING or not values_match(found, self.workflow_id):
                return False
        for path, expected in self.match.items():
            found = lookup_path(event.payload, path)
            if found is _MISSING or not values_match(found, expected):
                return False
        return True


def _take_matches(
    page: list[StoredEvent],
    flt: WebhookFilter,
    found: list[StoredEvent],
    cursor: int,
    *,
    first_only: bool,
    head: int,
) -> tuple[int, bool]:
    """Append the events of one page that pass ``flt`` to ``found``: the step both scans share.

    :return: The scan position after this page, and whether the scan is over.
    """
    for event in page:
        cursor = event.id
        if flt.matches(event):
            found.append(event)
            if first_only:
                return cursor, True
    if len(page) < PAGE_SIZE:
        # Ids become visible in increasing order, so the last, short page covered every event up
        # to the head read before it.
        return max(cursor, head), True
    return cursor, False


async def scan_async(
    reader: AsyncEventReader, flt: WebhookFilter, *, after_id: int = 0, first_only: bool = False
) -> tuple[list[StoredEvent], int]:
    """Scan the queue once for events after ``after_id`` that pass ``flt``.

    :param reader: The queue to read.
    :param flt: The filters the events must pass.
    :param after_id: Only events with a larger id.
    :param first_only: Stop at the first match.
    :return: The matching events in id order (only the first with ``first_only``) and the id up
        to which the queue has been scanned, to pass as ``after_id`` next time.
    """
    head = await reader.head_id()
    if head <= after_id:
        return [], after_id
    found: list[StoredEvent] = []
    cursor = after_id
    while True:
        page = await reader.fetch(after_id=cursor, limit=PAGE_SIZE, **flt.fetch_filters())
        cursor, done = _take_matches(page, flt, found, cursor, first_only=first_only, head=head)
        if done:
            return found, cursor


def scan_sync(
    queue: EventQueue, flt: WebhookFilter, *, after_id: int = 0, first_only: bool = False
) -> tuple[list[StoredEvent], int]:
    """Do what :func:`scan_async` does through the synchronous :class:`EventQueue` (poke mode).

    :param queue: The queue to read.
    :param flt: The filters the events must pass.
    :param after_id: Only events with a larger id.
    :param first_only: Stop at the first match.
    """
    head = queue.head_id()
    if head <= after_id:
        return [], after_id
    found: list[StoredEvent] = []
    cursor = after_id
    while True:
        page = queue.fetch(after_id=cursor, limit=PAGE_SIZE, **flt.fetch_filters())
        cursor, done = _take_matches(page, flt, found, cursor, first_only=first_only, head=head)
        if done:
            return found, cursor


def success_event(event: StoredEvent) -> TriggerEvent:
    """Wrap a stored event in the trigger event sensors and asset watchers receive.

    :param event: The matched event.
    """
    return TriggerEvent({"status": "success", "event": event.to_dict()})


class _Backoff:
    """Capped exponential backoff for a poll that failed; logs each failure once per attempt."""

    def __init__(self, base: float, what: str) -> None:
        self.base = max(base, 0.05)
        self.what = what
        self.failures = 0

    def ok(self) -> None:
        if self.failures:
            log.info("The event queue answers again (%s) after %d failed attempts.", self.what, self.failures)
        self.failures = 0

    async def failed(self, exc: BaseException) -> None:
        self.failures += 1
        delay = min(MAX_RETRY_BACKOFF, self.base * 2 ** min(self.failures, 16))
        log.warning(
            "Reading the event queue failed (%s, attempt %d): %s; retrying in %.1f s.",
            self.what,
            self.failures,
            exc,
            delay,
        )
        await asyncio.sleep(delay)


async def _retrying(call: Any, backoff: _Backoff) -> Any:
    """Await ``call()`` until it succeeds; a failing queue is retried, never fatal."""
    while True:
        try:
            result = await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await backoff.failed(exc)
            continue
        backoff.ok()
        return result


# -- shared-stream plumbing ----------------------------------------------------------------------


@dataclass(frozen=True)
class _StreamStart:
    """First raw item of a sensor stream: every event after ``head`` will be broadcast.

    A subscriber that joined before the poll opened scans ``(its own scan position, head]``
    itself, so nothing committed between its backfill and the poll's first read is missed.
    """

    head: int


@dataclass
class _WatchLink:
    """Hands a watcher's start cursor and state store to its stream's producer (same event loop)."""

    start: asyncio.Future[int]
    store: Any
    consumer: str


#: Watcher stream key -> link; set by the subscribing trigger, read by the stream's producer.
_WATCH_LINKS: dict[Hashable, _WatchLink] = {}


def _url_tag(queue_url: str | None) -> str:
    # The key is logged by the triggerer: never put a URL (it may hold a password) in it.
    if queue_url is None:
        return "config"
    return hashlib.sha256(queue_url.encode()).hexdigest()[:16]


def _sensor_stream_key(queue_url: str | None) -> tuple[str, ...]:
    return ("airflow-provider-iterable", "sensors", _url_tag(queue_url))


def _watch_stream_key(queue_url: str | None, consumer: str) -> tuple[str, ...]:
    return ("airflow-provider-iterable", "watcher", _url_tag(queue_url), consumer)


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


async def _read_cursor(store: Any, reader: AsyncEventReader, consumer: str) -> int | None:
    """Return the durable cursor: the asset state store first, else the queue's consumer cursor."""
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


async def _write_cursor(store: Any, reader: AsyncEventReader, consumer: str, event_id: int) -> None:
    """Store the cursor in the asset state store and mirror it to the queue (holds back purges)."""
    key = f"{CURSOR_KEY_PREFIX}:{consumer}"
    for accessor in _store_accessors(store):
        await accessor.aset(key, event_id)
    await reader.set_cursor(consumer, event_id)


class _QueueStreamProducer(SharedStreamProducer):
    """One poll loop over the queue, broadcasting every new event to a group's triggers.

    Sensor groups start at the queue's head (each sensor scans its own window first); a watcher
    group starts at its durable cursor and moves it in :meth:`advance`, which Airflow calls only
    after it has stored the asset events derived from the events passed.
    """

    def __init__(self, kwargs: Mapping[str, Any]) -> None:
        self.queue_url: str | None = kwargs.get("queue_url")
        self.poll_interval = float(kwargs.get("poll_interval") or DEFAULT_POLL_INTERVAL)
        self.watch_consumer: str | None = None
        if kwargs.get("mode") == "watcher":
            self.watch_consumer = kwargs.get("consumer") or default_consumer_name(kwargs)
        self._reader: AsyncEventReader | None = None
        self._link: _WatchLink | None = None
        self._blocked = False

    async def _open_reader(self) -> AsyncEventReader:
        if self._reader is None:
            # Resolving the configured URL may run a ``_cmd``/``_secret`` lookup: not in the loop.
            self._reader = await open_reader(self.queue_url)
        return self._reader

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        backoff = _Backoff(self.poll_interval, "shared poll")
        reader = await _retrying(self._open_reader, backoff)
        if self.watch_consumer is not None:
            key = _watch_stream_key(self.queue_url, self.watch_consumer)
            self._link = _WATCH_LINKS.get(key)
            if self._link is not None:
                position = await self._link.start
            else:
                # No subscriber handed over a cursor (not started by the trigger's own
                # shared_stream_key): fall back to the queue's mirror, else the head.
                consumer = self.watch_consumer
                stored = await _retrying(lambda: reader.get_cursor(consumer), backoff)
                position = stored if stored is not None else await _retrying(reader.head_id, backoff)
        else:
            position = await _retrying(reader.head_id, backoff)
            yield _StreamStart(position), None
        while True:
            try:
                head = await reader.head_id()
                while head > position:
                    page = await reader.fetch(after_id=position, limit=PAGE_SIZE)
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
        if self.watch_consumer is None or self._blocked:
            return
        last: int | None = None
        for item in batch:
            if item.broker_payload is None:
                continue
            outcome = item.outcome
            if not outcome.is_clean:
                # Not stored by Airflow (ack timeout, lost persist): the durable cursor stays
                # before it so a restarted triggerer delivers it again (at-least-once).
                log.error(
                    "Event %s was not confirmed stored by Airflow (%s); watcher %s keeps its cursor "
                    "before it so it is delivered again after a restart.",
                    item.broker_payload,
                    outcome,
                    self.watch_consumer,
                )
                self._blocked = True
                break
            last = int(item.broker_payload)
        if last is None:
            return
        reader = await self._open_reader()
        store = self._link.store if self._link is not None else None
        try:
            await _write_cursor(store, reader, self.watch_consumer, last)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Left where it was, the cursor only means a redelivery after a restart; the next
            # advance writes a later position.
            log.warning("Could not store watcher %s's cursor at %d: %s", self.watch_consumer, last, exc)

    async def aclose(self) -> None:
        if self.watch_consumer is not None:
            key = _watch_stream_key(self.queue_url, self.watch_consumer)
            if self._link is not None and _WATCH_LINKS.get(key) is self._link:
                del _WATCH_LINKS[key]
        if self._reader is not None:
            await self._reader.close()


def _config_queue_url() -> str:
    from airflow_provider_iterable import config

    return config.queue_url()


async def open_reader(queue_url: str | None) -> AsyncEventReader:
    """Open a reader on ``queue_url``, or on ``[iterable] queue_url`` when it is ``None``.

    The first time a triggerer opens a queue it logs what the backend implies for the deployment.

    :param queue_url: SQLAlchemy URL of the event queue, or ``None``.
    """

    def resolve() -> str:
        # A ``_cmd``/``_secret`` lookup and a look at the mount table: not in the event loop.
        url = queue_url if queue_url is not None else _config_queue_url()
        notice_backend(url)
        return url

    return AsyncEventReader(await asyncio.to_thread(resolve))


# -- the trigger ---------------------------------------------------------------------------------


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
    ) -> None:
        super().__init__()
        if not isinstance(iterable_conn_id, str) or not iterable_conn_id:
            raise ValueError(f"iterable_conn_id must be a non-empty string, got {iterable_conn_id!r}")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
        if event_name is not None and (not isinstance(event_name, str) or not event_name):
            raise ValueError(f"event_name must be a non-empty string or None, got {event_name!r}")
        if workflow_id is not None and (isinstance(workflow_id, bool) or not isinstance(workflow_id, int)):
            raise ValueError(f"workflow_id must be an int or None, got {workflow_id!r}")
        if match is not None and (
            not isinstance(match, dict) or not all(isinstance(k, str) and k for k in match)
        ):
            raise ValueError(f"match must be a dict of dotted payload paths to values, got {match!r}")
        parse_since(since)
        if after_id is not None and (
            isinstance(after_id, bool) or not isinstance(after_id, int) or after_id < 0
        ):
            raise ValueError(f"after_id must be an int >= 0 or None, got {after_id!r}")
        if (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, int | float)
            or not 0 < poll_interval <= 3600
        ):
            raise ValueError(f"poll_interval must be a number of seconds in (0, 3600], got {poll_interval!r}")
        if queue_url is not None and (not isinstance(queue_url, str) or not queue_url):
            raise ValueError("queue_url must be a non-empty SQLAlchemy URL string or None")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if consumer is not None and (not isinstance(consumer, str) or not consumer.strip()):
            raise ValueError(f"consumer must be a non-empty string or None, got {consumer!r}")
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

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the exact keyword arguments (no secret unless passed in)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
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
            },
        )

    def __repr__(self) -> str:
        classpath, kwargs = self.serialize()
        if kwargs["queue_url"] is not None:
            kwargs["queue_url"] = "***"
        return self.repr(classpath, kwargs)

    # -- helpers ---------------------------------------------------------------------------------

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

    # -- standalone loop (dag.test(), a direct run()) ----------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll the queue by itself: the first match (sensor) or every match (watcher)."""
        reader = await self._new_reader()
        backoff = _Backoff(float(self.poll_interval), "trigger poll")
        flt = self.webhook_filter
        watcher = self.effective_mode == "watcher"
        try:
            if watcher:
                position = await _retrying(lambda: self._watch_start(reader), backoff)
            elif self.since is None and self.after_id is None:
                # No window: only what arrives from now on.
                position = await _retrying(reader.head_id, backoff)
            else:
                position = self.after_id or 0
            while True:
                try:
                    found, scanned = await scan_async(reader, flt, after_id=position, first_only=not watcher)
                    backoff.ok()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    await backoff.failed(exc)
                    continue
                if not watcher:
                    if found:
                        # Release the reader before handing the event over: dag.test() never
                        # resumes a sensor's trigger after its first event.
                        await reader.close()
                        yield success_event(found[0])
                        return
                    position = scanned
                else:
                    for event in found:
                        yield success_event(event)
                        # Without Airflow's persistence acknowledgement, the cursor moves once
                        # the event has been handed over.
                        await _retrying(
                            lambda eid=event.id: _write_cursor(
                                self.asset_state_store, reader, self.consumer_name, eid
                            ),
                            backoff,
                        )
                    position = scanned
                await reader.wait_for_insert(float(self.poll_interval))
        finally:
            await reader.close()

    async def _watch_start(self, reader: AsyncEventReader) -> int:
        """Return the watcher's durable cursor; the first time, the queue's head (no replay)."""
        stored = await _read_cursor(self.asset_state_store, reader, self.consumer_name)
        if stored is not None:
            return stored
        head = await reader.head_id()
        # Written now, so events arriving while the triggerer is down are delivered after it.
        await _write_cursor(self.asset_state_store, reader, self.consumer_name, head)
        return head

    # -- shared streams (Airflow's triggerer) ------------------------------------------------------

    def shared_stream_key(self) -> Hashable | None:
        """Share one poll per queue among sensors; give each watcher a stream (and cursor) of its own."""
        if self.effective_mode == "watcher":
            # Resolve "auto" on this instance: the stream's producer is built from serialize().
            self.mode = "watcher"
            key = _watch_stream_key(self.queue_url, self.consumer_name)
            link = _WATCH_LINKS.get(key)
            if link is None or link.start.done():
                loop = asyncio.get_running_loop()
                _WATCH_LINKS[key] = _WatchLink(
                    loop.create_future(), self.asset_state_store, self.consumer_name
                )
            return key
        self.mode = "sensor"
        return _sensor_stream_key(self.queue_url)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
        """Build the shared poll loop (ack mode: watchers advance only after Airflow stored events).

        :param kwargs: The serialised keyword arguments of the trigger that opened the stream.
        """
        return _QueueStreamProducer(kwargs)

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """Turn the shared stream into this trigger's events.

        :param shared_stream: The items of the stream this trigger subscribed to.
        """
        if self.effective_mode == "watcher":
            async for event in self._filter_watcher(shared_stream):
                yield event
        else:
            async for event in self._filter_sensor(shared_stream):
                yield event

    async def _filter_sensor(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        flt = self.webhook_filter
        backoff = _Backoff(float(self.poll_interval), "sensor window scan")
        reader = await _retrying(self._new_reader, backoff)
        try:
            # The stream carries only what is broadcast after this trigger subscribed: first scan
            # the window for what was there before (an event may have arrived before the defer).
            position = self.after_id or 0
            found, position = await _retrying(
                lambda: scan_async(reader, flt, after_id=position, first_only=True), backoff
            )
            if found:
                yield success_event(found[0])
                return
            async for item in shared_stream:
                if isinstance(item, _StreamStart):
                    if item.head > position:
                        found, scanned = await _retrying(
                            lambda start=position: scan_async(reader, flt, after_id=start, first_only=True),
                            backoff,
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

    async def _filter_watcher(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        key = _watch_stream_key(self.queue_url, self.consumer_name)
        link = _WATCH_LINKS.get(key)
        backoff = _Backoff(float(self.poll_interval), "watcher cursor")
        reader = await _retrying(self._new_reader, backoff)
        try:
            start = await _retrying(lambda: self._watch_start(reader), backoff)
        finally:
            await reader.close()
        if link is not None and not link.start.done():
            link.start.set_result(start)
        flt = self.webhook_filter
        async for item in shared_stream:
            if not isinstance(item, StoredEvent) or item.id <= start:
                continue
            if flt.matches(item):
                yield success_event(item)


__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "IterableWebhookTrigger",
    "WebhookFilter",
    "lookup_path",
    "parse_since",
    "scan_async",
    "scan_sync",
    "values_match",
]
