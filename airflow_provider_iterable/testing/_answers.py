"""What a handler of the simulator gets (:class:`Call`) and gives back (:class:`Answer`, errors).

Iterable answers most actions with one envelope, ``{"msg", "code", "params"}``, and every bulk
action with the same counts; both are built here so every handler answers alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_iterable._values import iterable_datetime

#: Keys of ``failedUpdates`` in every bulk answer (Iterable omits none of them).
FAILED_UPDATE_KEYS: tuple[str, ...] = (
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
    "forgottenEmails",
    "forgottenUserIds",
    "conflictEmails",
    "conflictUserIds",
    "invalidDataEmails",
    "invalidDataUserIds",
)


@dataclass
class Answer:
    """What the HTTP layer sends back: a status, a JSON body (or text), and webhooks to fire."""

    status: int
    body: Any
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    content_type: str = "application/json"
    #: Where ``webhooks`` go when not to the system-webhook URL (a journey's Call Webhook tile).
    webhook_url: str | None = None
    webhook_headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """An Iterable error answer: ``{"msg", "code", "params"}`` with an HTTP status."""

    def __init__(self, status: int, code: str, msg: str, params: Any = None) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.params = params

    def answer(self) -> Answer:
        """Return this error as the answer Iterable sends."""
        return Answer(self.status, envelope(self.msg, self.code, self.params))


class ItemError(Exception):
    """One record of a bulk call failed; ``key`` is the ``failedUpdates`` list it belongs in."""

    def __init__(self, key: str, value: str, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.key = key
        self.value = value
        self.status = status
        self.code = code
        self.msg = msg

    def api_error(self) -> ApiError:
        """Return the error a single-record call answers with for this record."""
        return ApiError(self.status, self.code, self.msg)


@dataclass
class Call:
    """One parsed request handed to a handler."""

    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any

    def query_value(self, name: str) -> str | None:
        """Return the first value of query parameter ``name``, or None."""
        values = self.query.get(name)
        return values[0] if values else None


def envelope(msg: str, code: str = "Success", params: Any = None) -> dict[str, Any]:
    """Build Iterable's standard answer body."""
    return {"msg": msg, "code": code, "params": params}


def empty_failures() -> dict[str, list[str]]:
    """Return an empty ``failedUpdates`` mapping with every key Iterable sends."""
    return {key: [] for key in FAILED_UPDATE_KEYS}


def bulk_answer(
    success: int, failed: dict[str, list[str]], created: list[str], filtered: list[str]
) -> dict[str, Any]:
    """Build the counts every bulk action answers with."""
    return {
        "successCount": success,
        "failCount": sum(len(v) for v in failed.values()),
        "createdFields": sorted(set(created)),
        "filteredOutFields": sorted(set(filtered)),
        "failedUpdates": failed,
        # Deprecated top-level copies Iterable still sends.
        "invalidEmails": list(failed["invalidEmails"]),
        "invalidUserIds": list(failed["invalidUserIds"]),
    }


def int_param(raw: str, name: str) -> int:
    """Return a path or query parameter as an int, or raise Iterable's 400 naming it."""
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "BadParams", f"{name} must be an integer, got {raw!r}") from None


def iterable_time(ts: float | None = None) -> str:
    """Format a time as Iterable's webhooks do: ``"2015-04-24 21:35:02 +00:00"``."""
    return iterable_datetime(datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc))


def profile_time(ts: float) -> str:
    """Format a time as Iterable's user profiles do, with milliseconds."""
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} +00:00"
