"""Requests as Iterable reads them: compact JSON bodies, its date formats, percent-encoded paths.

Iterable takes dates in three shapes, depending on the field: ``yyyy-MM-dd HH:mm:ss +00:00``
for date-typed user and event fields (any ``datetime`` in a body), ``YYYY-MM-DD HH:MM:SS`` in
UTC for ``sendAt``, and Unix seconds for an event's ``createdAt``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from airflow_provider_iterable._values import is_number, iterable_datetime, parse_datetime_text, to_utc
from airflow_provider_iterable.exceptions import IterableConfigError

__all__ = ["SEND_AT_FORMAT", "compact", "encode_body", "epoch_seconds", "path_segment", "send_at"]

#: The format of ``sendAt`` in ``email/target`` and ``sms/target``, always in UTC.
SEND_AT_FORMAT = "%Y-%m-%d %H:%M:%S"


def compact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``fields`` without its ``None`` values.

    An absent field keeps Iterable's default; a ``null`` might not.

    :param fields: a request body, keyed by Iterable's field names.
    """
    return {key: value for key, value in fields.items() if value is not None}


def encode_body(body: Any) -> bytes:
    """Return ``body`` as compact JSON bytes, dates in Iterable's format.

    :param body: a JSON value; ``datetime`` (naive means UTC), ``date``, ``Decimal``, sets and
        tuples are converted.
    :raises IterableConfigError: when something in it cannot be sent as JSON (an object, NaN, ...).
    """
    try:
        return json.dumps(body, default=_json_default, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise IterableConfigError(f"The request body cannot be encoded as JSON: {exc}") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iterable_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise IterableConfigError(f"Object of type {type(value).__name__} cannot be sent to Iterable as JSON")


def epoch_seconds(value: datetime | float) -> int:
    """Return an event's ``createdAt``: whole Unix seconds.

    :param value: a datetime (naive means UTC) or Unix seconds.
    :raises IterableConfigError: when it is neither.
    """
    if isinstance(value, datetime):
        return int(to_utc(value).timestamp())
    if not is_number(value):
        raise IterableConfigError(f"created_at must be a datetime or Unix seconds (a number), got {value!r}")
    return int(value)


def send_at(value: datetime | str) -> str:
    """Return ``sendAt`` as Iterable wants it: ``YYYY-MM-DD HH:MM:SS`` in UTC.

    :param value: a datetime (naive means UTC) or a date-time string (ISO-8601 or Iterable's
        ``yyyy-MM-dd HH:mm:ss +00:00``; no offset means UTC).
    :raises IterableConfigError: when it is neither.
    """
    if isinstance(value, str):
        try:
            value = parse_datetime_text(value)
        except ValueError:
            raise IterableConfigError(
                f"send_at must be a datetime or a date-time string like '2026-12-01 09:30:00' (UTC), "
                f"got {value!r}"
            ) from None
    if not isinstance(value, datetime):
        raise IterableConfigError(f"send_at must be a datetime or a string, got {value!r}")
    return to_utc(value).strftime(SEND_AT_FORMAT)


def path_segment(value: str) -> str:
    """Return ``value`` percent-encoded for one segment of a URL path.

    Everything that is not plainly safe is encoded: ``+`` must become ``%2B``, or Iterable reads
    it as a space, and ``/`` must not split the path.

    :param value: an e-mail address, a userId, ...
    """
    return quote(value, safe="@")
