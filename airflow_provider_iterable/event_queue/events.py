"""The value types that cross the queue's boundary: what a receiver writes and what a reader gets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_iterable._values import KINDS
from airflow_provider_iterable.exceptions import IterableConfigError, QueueUnavailableError

__all__ = [
    "EVENT_NAME_MAX_CHARS",
    "KINDS",
    "NewEvent",
    "QueueUnavailableError",
    "StoredEvent",
    "storable_text",
]

#: Longest ``event_name`` stored: it is indexed, and every indexed value must stay within
#: PostgreSQL's B-tree row limit. ``email`` and ``user_id`` are not indexed and have no limit.
EVENT_NAME_MAX_CHARS = 255


@dataclass(frozen=True)
class NewEvent:
    """A webhook delivery, classified by the receiver and ready to be stored.

    :param conn_id: The Airflow connection (Iterable project) the delivery came through.
    :param kind: ``"system"`` or ``"journey"``.
    :param payload: The body as received (a form body as a dict of strings / lists).
    :param query: The query string of the delivery (Iterable's URL merge tags).
    :param event_name: The payload's ``eventName``; ``None`` for a journey body without one.
    :param workflow_id: The journey id of a journey webhook, or a system event's
        ``dataFields.workflowId``.
    :param campaign_id: The campaign id, when the delivery names one.
    :param email: The user's e-mail address, when the delivery names one.
    :param user_id: The user's ``userId``, when the delivery names one.
    :param dedupe_key: A hex digest of connection, kind, journey id, query and canonical body:
        an identical key within the dedupe window is a retry, not a new event.
    """

    conn_id: str
    kind: str
    payload: dict[str, Any]
    query: dict[str, Any]
    event_name: str | None
    workflow_id: int | None
    campaign_id: int | None
    email: str | None
    user_id: str | None
    dedupe_key: str

    def __post_init__(self) -> None:
        # Checked here, not at the database: a value the database would refuse must never look
        # like an unavailable store (a sender would retry it forever), nor fail a batch that
        # also holds other deliveries (append_many). Messages name types and lengths, never a
        # value: an e-mail address must not reach an exception text.
        if self.kind not in KINDS:
            raise IterableConfigError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for name, limit, required in _TEXT_FIELDS:
            value = getattr(self, name)
            if value is None and not required:
                continue
            if not isinstance(value, str) or (required and not value):
                raise IterableConfigError(
                    f"{name} must be a {'non-empty ' if required else ''}string, got {_described(value)}"
                )
            if limit is not None and len(value) > limit:
                raise IterableConfigError(f"{name} must be at most {limit} characters, got {len(value)}")
            _check_storable_text(name, value)
        for name in ("workflow_id", "campaign_id"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise IterableConfigError(f"{name} must be an int or None, got {type(value).__name__}")
            if not -(2**63) <= value < 2**63:
                raise IterableConfigError(f"{name} must fit in 64 bits, got {value}")
        for name in ("payload", "query"):
            if not isinstance(getattr(self, name), dict):
                raise IterableConfigError(f"{name} must be a dict, got {type(getattr(self, name)).__name__}")


# (field, longest length, required). The limits keep every indexed value within PostgreSQL's
# B-tree row limit; email and userId are not indexed and have none.
_TEXT_FIELDS: tuple[tuple[str, int | None, bool], ...] = (
    ("conn_id", 250, True),
    ("dedupe_key", 128, True),
    ("event_name", EVENT_NAME_MAX_CHARS, False),
    ("email", None, False),
    ("user_id", None, False),
)


def storable_text(value: Any, limit: int | None = None) -> bool:
    """Return whether ``value`` is text a :class:`NewEvent` text column takes on every backend.

    The receiver keeps a payload whole whatever it holds, and leaves an index column empty when
    the payload's value does not pass this.

    :param value: Any value.
    :param limit: The column's length in characters, or ``None`` for unlimited text.
    """
    if not isinstance(value, str) or (limit is not None and len(value) > limit) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_storable_text(name: str, value: str) -> None:
    """Refuse text no backend can store: NUL characters (PostgreSQL) and lone surrogates (UTF-8)."""
    if "\x00" in value:
        raise IterableConfigError(f"{name} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise IterableConfigError(f"{name} is not valid Unicode text (lone surrogate)") from None


def _described(value: Any) -> str:
    return "an empty string" if value == "" else type(value).__name__


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored in the queue, with its id and the time it was received.

    :param id: The event id: ids only increase, and become visible in increasing order.
    :param received_at: When the receiver stored it (timezone-aware, UTC).
    """

    id: int
    received_at: datetime
    conn_id: str
    kind: str
    event_name: str | None
    workflow_id: int | None
    campaign_id: int | None
    email: str | None
    user_id: str | None
    payload: dict[str, Any]
    query: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a JSON-safe dict (``received_at`` as an ISO-8601 UTC string)."""
        return {
            "id": self.id,
            "received_at": self.received_at.astimezone(timezone.utc).isoformat(),
            "conn_id": self.conn_id,
            "kind": self.kind,
            "event_name": self.event_name,
            "workflow_id": self.workflow_id,
            "campaign_id": self.campaign_id,
            "email": self.email,
            "user_id": self.user_id,
            "payload": self.payload,
            "query": self.query,
        }
