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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from airflow_provider_iterable._values import (
    as_utc_datetime,
    is_number,
    is_whole_number,
    json_list,
    json_object,
)
from airflow_provider_iterable.exceptions import (
    IterableApiError,
    IterableConfigError,
    IterableOutcomeUnknownError,
    IterableRateLimitError,
)
from airflow_provider_iterable.failures import IterableArgumentError, IterableTaskFailedError, argument_errors
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
            raise IterableTaskFailedError(
                f"Outcome unknown while {action}; not retried so nothing is sent twice: {exc}"
            ) from exc
        except IterableConfigError as exc:
            raise IterableTaskFailedError(
                f"Connection {self.iterable_conn_id!r} cannot be used ({action}): {exc}"
            ) from exc
        except IterableRateLimitError:
            raise  # 429 after the hook's retries: a later task try may well succeed
        except IterableApiError as exc:
            if exc.status < 500:
                raise IterableTaskFailedError(f"Iterable refused the request ({action}): {exc}") from exc
            raise


# ---------------------------------------------------------------------------------------------
# Argument checks. Each runs in execute(), after templates rendered, before any request, and
# raises IterableArgumentError (an AirflowFailException: a task retry cannot fix it) naming the
# parameter and what would be right. Each takes the rendered ``value`` and the ``name`` of the
# parameter it came from (for the message). The checks of plain values are _values.py's.
# ---------------------------------------------------------------------------------------------


def fail(message: str) -> IterableArgumentError:
    """Return the exception for an argument or input error (raised by the caller).

    :param message: what is wrong and what would be right, naming the parameter.
    """
    return IterableArgumentError(message)


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
    if is_whole_number(value):
        return int(value)
    if isinstance(value, bool):
        raise fail(f"{name} must be a whole number such as 42, got {value!r}")
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
            with argument_errors():
                value = json_list(text, name)
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
    with argument_errors():
        out = json_object(value, name)
    if out is None:
        return None
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise fail(
            f"{name} must hold only JSON values (str, number, bool, null, list, dict): {exc}"
        ) from None
    return out


def epoch_seconds(value: Any, name: str) -> int | None:
    """Return Iterable's ``createdAt``: whole unix seconds from a datetime, a number or an ISO string."""
    if _is_blank(value):
        return None
    if isinstance(value, bool):
        raise fail(f"{name} must be a datetime or unix seconds, got {value!r}")
    if isinstance(value, (int, float)):
        if not is_number(value, minimum=0):
            raise fail(f"{name} must be a datetime or non-negative unix seconds, got {value!r}")
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    with argument_errors():
        return int(as_utc_datetime(value, name).timestamp())


def optional_datetime(value: Any, name: str) -> datetime | None:
    """Return an aware UTC datetime from a datetime, a date or an ISO-8601 string; blank stays ``None``.

    :param value: the rendered argument (naive means UTC).
    :param name: the parameter name, for the error message.
    """
    if _is_blank(value):
        return None
    with argument_errors():
        return as_utc_datetime(value, name)


def check_xcom_fields(value: Any) -> list[str] | None:
    """Return ``xcom_fields`` as a list of dotted paths, or ``None`` to push the whole result."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) and p for p in value):
        raise fail("xcom_fields must be a list of dotted paths such as ['email', 'dataFields.firstName']")
    return list(value)
