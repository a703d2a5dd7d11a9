"""Checks and conversions of plain values that every part of the provider shares.

Each is defined once here: whole numbers that are not booleans, "a JSON string or a mapping",
dotted paths into a document, Iterable's date format, and the constants webhook events are
classified by. They raise :class:`~airflow_provider_iterable.exceptions.IterableConfigError`
(a ``ValueError``) with a message naming the value; callers that need another wording catch it
or use the ``is_*`` predicates.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Any, Final

from airflow_provider_iterable.exceptions import IterableConfigError

#: The two kinds of webhook: Iterable's system webhooks and a journey's webhook tiles.
KINDS: Final = ("system", "journey")

#: A journey (workflow) id as it appears in a URL: 1 to 19 ASCII digits (ids are 64-bit).
ID_DIGITS: Final = re.compile(r"[0-9]{1,19}")

#: Ids are stored as 64-bit signed integers; anything larger cannot be an Iterable id.
MAX_ID: Final = 2**63 - 1

#: Iterable's date format for user fields, event ``createdAt`` in webhooks and export slices.
ITERABLE_DATETIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S +00:00"


class _Missing:
    """The type of :data:`MISSING`: no value at a path (distinct from a JSON ``null``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


#: Returned by :func:`lookup_path` when the document has nothing at the path.
MISSING: Final = _Missing()


# -- numbers --------------------------------------------------------------------------------------


def is_whole_number(value: Any, *, minimum: int | None = None, maximum: int | None = None) -> bool:
    """Return whether ``value`` is an ``int`` (never a ``bool``) within the bounds.

    :param value: the value to check.
    :param minimum: the smallest value allowed (inclusive), or ``None``.
    :param maximum: the largest value allowed (inclusive), or ``None``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def is_number(
    value: Any, *, minimum: float | None = None, maximum: float | None = None, positive: bool = False
) -> bool:
    """Return whether ``value`` is a finite ``int`` or ``float`` (never a ``bool``) within the bounds.

    :param value: the value to check.
    :param minimum: the smallest value allowed (inclusive), or ``None``.
    :param maximum: the largest value allowed (inclusive), or ``None``.
    :param positive: also require ``value > 0``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if not math.isfinite(value):
        return False
    if positive and value <= 0:
        return False
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def whole_number(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` if it is a whole number within the bounds, else raise naming ``name``.

    :param value: the value to check (an ``int``; a ``bool`` is refused).
    :param name: what the value is, for the message (``"limit"``, ``"max_batch"``).
    :param minimum: the smallest value allowed (inclusive), or ``None``.
    :param maximum: the largest value allowed (inclusive), or ``None``.
    :raises IterableConfigError: when it is not.
    """
    if is_whole_number(value, minimum=minimum, maximum=maximum):
        return int(value)
    if minimum is not None and maximum is not None:
        bounds = f" from {minimum} to {maximum}"
    elif minimum is not None:
        bounds = f" of at least {minimum}"
    elif maximum is not None:
        bounds = f" of at most {maximum}"
    else:
        bounds = ""
    raise IterableConfigError(f"{name} must be a whole number{bounds}, got {value!r}")


def id_like(value: Any) -> int | None:
    """Return ``value`` as a non-negative 64-bit id when it is one, or a string of digits; else ``None``.

    Form bodies and query strings carry numbers as text, and a JSON body may carry ``42.0``.

    :param value: any JSON value.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_ID else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and 0 <= value <= MAX_ID else None
    if isinstance(value, str):
        text = value.strip()
        if ID_DIGITS.fullmatch(text):
            number = int(text)
            return number if number <= MAX_ID else None
    return None


# -- JSON ---------------------------------------------------------------------------------------


def json_object(
    value: Any, name: str, *, not_json: str | None = None, not_object: str | None = None
) -> dict[str, Any] | None:
    """Return a mapping given as a mapping or as JSON text (a connection extra, a rendered template).

    ``None`` and an empty or blank string are ``None`` (unset).

    :param value: a mapping, a JSON object string, ``None`` or ``""``.
    :param name: what the value is, for the message (``"extra 'rate_limits'"``).
    :param not_json: the whole message when ``value`` is text that is not JSON (default: one
        naming ``name``).
    :param not_object: the message when the value is not an object, before the ``", got <type>"``
        that is appended (default: one naming ``name``).
    :raises IterableConfigError: when it is text that is not JSON, or not an object.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            raise IterableConfigError(
                not_json or f"{name} must be a JSON object, got text that is not JSON"
            ) from None
    if not isinstance(value, Mapping):
        wanted = not_object or f"{name} must be a JSON object (a mapping)"
        raise IterableConfigError(f"{wanted}, got {type(value).__name__}")
    return dict(value)


def json_list(value: Any, name: str) -> list[Any]:
    """Return a list given as a list (or tuple) or as JSON text.

    :param value: a list, a tuple or a JSON array string.
    :param name: what the value is, for the message.
    :raises IterableConfigError: when it is neither.
    """
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            raise IterableConfigError(
                f"{name} must be a list (or a JSON list), got text that is not JSON"
            ) from None
    if not isinstance(value, list | tuple):
        raise IterableConfigError(f"{name} must be a list (or a JSON list), got {type(value).__name__}")
    return list(value)


# -- dotted paths --------------------------------------------------------------------------------


def lookup_path(document: Any, path: str) -> Any:
    """Return the value at a dotted ``path`` in ``document``, or :data:`MISSING`.

    A segment that is a non-negative integer indexes a list (``items.0.sku``).

    :param document: the JSON value to walk.
    :param path: dot-separated keys (and list indexes).
    """
    current = document
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return MISSING
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current


def pick_paths(document: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """Return only the dotted ``paths`` of ``document``, nested as in it; missing ones are left out.

    :param document: the full document (a user profile, a webhook event).
    :param paths: dotted paths such as ``"email"`` or ``"dataFields.firstName"``.
    """
    picked: dict[str, Any] = {}
    for path in paths:
        value = lookup_path(document, path)
        if value is MISSING:
            continue
        parts = path.split(".")
        target = picked
        for part in parts[:-1]:
            node = target.setdefault(part, {})
            if not isinstance(node, dict):  # a shorter path already took this key whole
                break
            target = node
        else:
            target[parts[-1]] = value
    return picked


# -- dates ---------------------------------------------------------------------------------------

# Iterable writes offsets with a space ("2026-11-27 03:05:00 +00:00"); ISO-8601 does not.
_SPACED_OFFSET = re.compile(r"\s+([+-]\d{2}:?\d{2})$")


def to_utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC; a naive datetime is taken to be UTC already.

    :param moment: an aware or naive datetime.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def parse_datetime_text(text: str) -> datetime:
    """Parse ISO-8601 or Iterable's ``yyyy-MM-dd HH:mm:ss +00:00``; return it aware, in UTC.

    A trailing ``Z`` means UTC; no offset means UTC.

    :param text: the timestamp.
    :raises ValueError: when it is not one.
    """
    cleaned = _SPACED_OFFSET.sub(r"\1", text.strip())
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    return to_utc(datetime.fromisoformat(cleaned))


def as_utc_datetime(value: Any, name: str) -> datetime:
    """Return an aware UTC datetime from a datetime, a date (midnight UTC) or a timestamp string.

    :param value: a datetime (naive means UTC), a date, or text :func:`parse_datetime_text` reads.
    :param name: what the value is, for the message.
    :raises IterableConfigError: when it is none of those.
    """
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, str):
        try:
            return parse_datetime_text(value)
        except ValueError:
            pass
    raise IterableConfigError(
        f"{name} must be a datetime or an ISO-8601 string such as '2026-11-27 09:30:00' "
        f"(naive means UTC), got {value!r}"
    )


def iterable_datetime(moment: datetime) -> str:
    """Return ``moment`` in Iterable's date format, ``yyyy-MM-dd HH:mm:ss +00:00``, in UTC.

    :param moment: an aware or naive (UTC) datetime.
    """
    return to_utc(moment).strftime(ITERABLE_DATETIME_FORMAT)
