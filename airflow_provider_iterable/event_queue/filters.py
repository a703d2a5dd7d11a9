"""What a sensor or an asset watcher waits for: one filter, from the trigger's arguments to the SQL.

A :class:`WebhookFilter` is built once (by the trigger, from its keyword arguments) and passed
whole: the queue's ``fetch`` applies the parts its indexes serve (connection, kind, event name,
journey, time window) in SQL, and :meth:`WebhookFilter.matches` checks every part, ``match``
included, in Python. Sensors in poke mode, deferred sensors and watchers all match through it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_iterable._values import (
    KINDS,
    MISSING,
    is_whole_number,
    lookup_path,
    parse_datetime_text,
)
from airflow_provider_iterable.event_queue.events import StoredEvent
from airflow_provider_iterable.exceptions import IterableConfigError


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
    """Parse an ISO-8601 timestamp (or Iterable's ``yyyy-MM-dd HH:mm:ss +00:00``); no offset means UTC.

    :param since: The timestamp, or ``None`` (returned as ``None``).
    :param name: The parameter's name, for the error message.
    :raises IterableConfigError: naming ``name`` when the text is not a timestamp.
    """
    if since is None:
        return None
    if not isinstance(since, str):
        raise IterableConfigError(f"{name} must be an ISO-8601 string or None, got {since!r}")
    try:
        return parse_datetime_text(since)
    except ValueError:
        raise IterableConfigError(f"{name} must be an ISO-8601 timestamp, got {since!r}") from None


@dataclass(frozen=True)
class WebhookFilter:
    """What a waiting sensor or watcher is looking for; every field left ``None`` matches anything.

    :param conn_id: The Airflow connection (Iterable project) the event came through.
    :param kind: ``"system"``, ``"journey"`` or ``None`` for either.
    :param event_name: The payload's ``eventName`` (``emailOpen``, ``smsSend``, ...).
    :param workflow_id: A journey event's id, or a system event's ``dataFields.workflowId``.
    :param match: Dotted payload path -> expected value (see :func:`values_match`). Not indexed:
        only :meth:`matches` checks it.
    :param since: Only events received at or after this (timezone-aware) time.
    :raises IterableConfigError: naming the field when a value is of the wrong type.
    """

    conn_id: str | None = None
    kind: str | None = None
    event_name: str | None = None
    workflow_id: int | None = None
    match: Mapping[str, Any] = field(default_factory=dict)
    since: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("conn_id", "event_name"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise IterableConfigError(f"{name} must be a string or None, got {value!r}")
        if self.kind is not None and self.kind not in KINDS:
            raise IterableConfigError(f"kind must be one of {KINDS} or None, got {self.kind!r}")
        if self.workflow_id is not None and not is_whole_number(self.workflow_id):
            raise IterableConfigError(f"workflow_id must be an int or None, got {self.workflow_id!r}")
        if not isinstance(self.match, Mapping) or not all(isinstance(k, str) and k for k in self.match):
            raise IterableConfigError(
                f"match must be a dict of dotted payload paths to values, got {self.match!r}"
            )
        since = self.since
        if since is not None and (not isinstance(since, datetime) or since.tzinfo is None):
            raise IterableConfigError(f"since must be a timezone-aware datetime, got {since!r}")

    def matches(self, event: StoredEvent) -> bool:
        """Return whether ``event`` passes every part of the filter, the SQL ones included.

        :param event: A stored event (from a ``fetch``, or broadcast raw by the shared poll).
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
            if found is MISSING or not values_match(found, self.workflow_id):
                return False
        for path, expected in self.match.items():
            found = lookup_path(event.payload, path)
            if found is MISSING or not values_match(found, expected):
                return False
        return True


#: The filter that matches every event.
EVERYTHING = WebhookFilter()

__all__ = ["EVERYTHING", "WebhookFilter", "parse_since", "values_match"]
