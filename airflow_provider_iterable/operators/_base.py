"""What every Iterable operator shares: the hook, argument checks, and the error policy.

The error policy decides what a task retry may repeat. Airflow retries a task on any exception
except :class:`~airflow.sdk.exceptions.AirflowFailException`, so:

- a bad argument, a bad connection, a 4xx answer (other than 429) and an answer that cannot be
  read cannot be fixed by trying again: they become ``AirflowFailException``;
- a non-idempotent call whose outcome is unknown (the hook raises
  :class:`~airflow_provider_iterable.exceptions.IterableOutcomeUnknownError`) must not be sent a
  second time: it becomes ``AirflowFailException`` too;
- everything else (429 after the hook's own retries, 5xx on safe endpoints, a dropped network)
  propagates unchanged, so Airflow's ``retries`` can try again later.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timezone
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_iterable.exceptions import (
    IterableApiError,
    IterableConfigError,
    IterableOutcomeUnknownError,
    IterableRateLimitError,
)
from airflow_provider_iterable.hooks.iterable import IterableHook

DEFAULT_CONN_ID = "iterable_default"


class IterableBaseOperator(BaseOperator):
    """Base class of the Iterable operators: holds the connection id and builds the hook lazily.

    :param iterable_conn_id: the Airflow connection of the Iterable project
        (default ``iterable_default``).
    """

    def __init__(self, *, iterable_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.iterable_conn_id = iterable_conn_id

    @cached_property
    def hook(self) -> IterableHook:
        """Return the hook of this task; built on first use, never at DAG-parse time."""
        return IterableHook(iterable_conn_id=self.iterable_conn_id)

    @contextmanager
    def _iterable_errors(self, action: str) -> Iterator[None]:
        """Turn the errors a task retry cannot fix, or must not repeat, into ``AirflowFailException``.

        :param action: what was being done, for the message (``"sending the SMS"``).
        """
        try:
            yield
        except IterableOutcomeUnknownError as exc:
            raise AirflowFailException(
                f"Outcome unknown while {action}; not retried so nothing is sent twice: {exc}"
            ) from exc
        except IterableConfigError as exc:
            raise AirflowFailException(
                f"Connection {self.iterable_conn_id!r} cannot be used ({action}): {exc}"
            ) from exc
        except IterableRateLimitError:
            raise  # 429 after the hook's retries: a later task try may well succeed
        except IterableApiError as exc:
            if exc.status < 500:
                raise AirflowFailException(f"Iterable refused the request ({action}): {exc}") from exc
            raise


# ---------------------------------------------------------------------------------------------
# Argument checks. Each runs in execute(), after templates rendered, before any request, and
# raises AirflowFailException naming the parameter and what would be right. Each takes the
# rendered ``value`` and the ``name`` of the parameter it came from (for the message).
# ---------------------------------------------------------------------------------------------


def fail(message: str) -> AirflowFailException:
    """Return the exception for an argument error (raised by the caller)."""
    return AirflowFailException(message)


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def optional_str(value: Any, name: str) -> str | None:
    """Return ``value`` as a non-empty string, ``None`` when unset or blank.

    :param value: the rendered argument.
    :param name: the parameter name, for the error message.
    """
    if _is_blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise fail(f"{name} must be a string, got {type(value).__name__}")
    return str(value).strip()


def required_str(value: Any, name: str) -> str:
    """Return ``value`` as a non-empty string or fail naming ``name``."""
    text = optional_str(value, name)
    if text is None:
        raise fail(f"{name} is required and must be a non-empty string")
    return text


def one_of(**candidates: Any) -> dict[str, str]:
    """Check that exactly one of several identifying arguments is set; return ``{name: value}``.

    Iterable identifies a user by e-mail address **or** by userId, not both, so every operator
    that names one user (or, for journeys, one list) checks it the same way.

    :param candidates: the parameters by name, e.g. ``email=self.email, user_id=self.user_id``,
        with their rendered values (blank counts as not set).
    """
    present = {}
    for name, value in candidates.items():
        text = optional_str(value, name)
        if text is not None:
            present[name] = text
    names = list(candidates)
    options = " or ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + f" or {names[-1]}"
    if not present:
        raise fail(f"Set one of {options}: none was given (or all rendered empty)")
    if len(present) > 1:
        raise fail(f"Set only one of {options}, not {' and '.join(present)}")
    return present


def as_int(value: Any, name: str) -> int:
    """Return a rendered id as an ``int``: ``42`` and ``"42"`` pass, ``"abc"`` and ``True`` fail.

    :param value: the rendered argument (an int, or a string of digits after templating).
    :param name: the parameter name, for the error message.
    """
    if isinstance(value, bool):
        raise fail(f"{name} must be a whole number such as 42, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit() and text.isascii():
            return int(text)
    raise fail(
        f"{name} must be a whole number such as 42 (a rendered template like '42' is fine), got {value!r}"
    )


def optional_int(value: Any, name: str) -> int | None:
    """Like :func:`as_int`, but ``None`` (or an empty rendered string) stays ``None``."""
    return None if _is_blank(value) else as_int(value, name)


def optional_int_list(value: Any, name: str) -> list[int] | None:
    """Return a list of ids; accept a list, a JSON list string or ``"1,2,3"`` (rendered templates).

    ``None`` stays ``None`` (not sent); an empty list stays an empty list (sent: it clears the
    field in Iterable).
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise fail(f"{name} must be a list of whole numbers, got {text!r}") from None
        elif text == "":
            return []
        else:
            value = [part for part in text.split(",")]
    if isinstance(value, (list, tuple, set)):
        return [as_int(item, f"{name} item") for item in value]
    raise fail(f"{name} must be a list of whole numbers such as [1, 2], got {value!r}")


def optional_bool(value: Any, name: str) -> bool | None:
    """Return a rendered flag: a bool, or ``"true"``/``"false"`` from a template; ``None`` stays unset."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise fail(f"{name} must be true or false, got {value!r}")


def optional_dict(value: Any, name: str) -> dict[str, Any] | None:
    """Return a JSON object argument (``data_fields``, ``metadata``); a rendered JSON string is parsed."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        try:
            value = json.loads(text)
        except ValueError:
            raise fail(f"{name} must be a JSON object (a dict), got a string that is not JSON") from None
    if not isinstance(value, Mapping):
        raise fail(f"{name} must be a JSON object (a dict), got {type(value).__name__}")
    out = dict(value)
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise fail(
            f"{name} must hold only JSON values (str, number, bool, null, list, dict): {exc}"
        ) from None
    return out


def _to_utc(moment: datetime) -> datetime:
    # Naive datetimes are UTC: Airflow's own dates are aware, and anything naive most likely
    # came from a data file written in UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def parse_datetime(value: Any, name: str) -> datetime:
    """Return an aware UTC datetime from a datetime, a date, or an ISO-8601 string.

    :param value: the rendered argument.
    :param name: the parameter name, for the error message.
    """
    if isinstance(value, datetime):
        return _to_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        try:
            return _to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            pass
    raise fail(
        f"{name} must be a datetime or an ISO-8601 string such as '2026-11-27 09:30:00' "
        f"(naive means UTC), got {value!r}"
    )


def epoch_seconds(value: Any, name: str) -> int | None:
    """Return Iterable's ``createdAt``: whole unix seconds from a datetime, a number or an ISO string."""
    if _is_blank(value):
        return None
    if isinstance(value, bool):
        raise fail(f"{name} must be a datetime or unix seconds, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise fail(f"{name} must be a datetime or non-negative unix seconds, got {value!r}")
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return int(parse_datetime(value, name).timestamp())


def optional_datetime(value: Any, name: str) -> datetime | None:
    """Like :func:`parse_datetime`, but ``None`` (or an empty rendered string) stays ``None``."""
    return None if _is_blank(value) else parse_datetime(value, name)


def iterable_date_text(moment: datetime) -> str:
    """Return a date in Iterable's user-field date format, ``yyyy-MM-dd HH:mm:ss ZZ`` in UTC."""
    return _to_utc(moment).strftime("%Y-%m-%d %H:%M:%S +00:00")


def pick_fields(data: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """Return only the dotted ``paths`` of ``data`` (nested as in the original); missing ones are left out.

    :param data: the full document (a user profile).
    :param paths: dotted paths such as ``"email"`` or ``"dataFields.firstName"``.
    """
    out: dict[str, Any] = {}
    for path in paths:
        parts = path.split(".")
        node: Any = data
        for part in parts:
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            target = out
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = node
    return out


def check_xcom_fields(value: Any) -> list[str] | None:
    """Return ``xcom_fields`` as a list of dotted paths, or ``None`` to push the whole result."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) and p for p in value):
        raise fail("xcom_fields must be a list of dotted paths such as ['email', 'dataFields.firstName']")
    return list(value)
