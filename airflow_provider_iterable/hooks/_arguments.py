"""Checks of the hook methods' arguments, made before any request, and the shape of what they return."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_iterable.exceptions import IterableConfigError

__all__ = ["as_dict", "as_list", "blank", "require_identity", "require_items", "require_text"]


def blank(value: Any) -> bool:
    """Return whether an identity argument is unset: ``None`` or a blank string.

    :param value: the argument.
    """
    return value is None or (isinstance(value, str) and not value.strip())


def require_text(method: str, name: str, value: Any) -> None:
    """Refuse anything but a non-empty string.

    :param method: the hook method, named in the message.
    :param name: the argument, named in the message.
    :param value: its value.
    :raises IterableConfigError: when it is not one.
    """
    if not isinstance(value, str) or not value.strip():
        raise IterableConfigError(f"{method} needs {name} as a non-empty string, got {value!r}")


def require_identity(method: str, **candidates: Any) -> None:
    """Refuse a call that names none of the ways Iterable identifies its target.

    :param method: the hook method, named in the message.
    :param candidates: argument name -> value (``email=..., user_id=...``), in the order named.
    :raises IterableConfigError: when every one is blank.
    """
    if all(blank(value) for value in candidates.values()):
        names = list(candidates)
        wanted = " or ".join(names) if len(names) == 2 else ", ".join(names[:-1]) + f" or {names[-1]}"
        raise IterableConfigError(f"{method} needs {wanted}")


def require_items(method: str, name: str, value: Any) -> list[Any]:
    """Return the items of a bulk argument (users, subscribers, events) as a list.

    A string or a single mapping is refused rather than turned into a list of its characters
    or keys.

    :param method: the hook method, named in the message.
    :param name: the argument, named in the message.
    :param value: a list, tuple or any other iterable of items.
    :raises IterableConfigError: when it is not one.
    """
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise IterableConfigError(
            f"{method} needs {name} as a list of items in Iterable's shape, got {type(value).__name__}"
        )
    return list(value)


def as_list(values: Sequence[Any] | None) -> list[Any] | None:
    """Return a sequence argument as a JSON list, keeping ``None`` (not sent) apart from ``[]`` (sent).

    :param values: the argument.
    """
    return None if values is None else list(values)


def as_dict(answer: Any) -> dict[str, Any]:
    """Return Iterable's answer as a dict; an answer that is not an object is kept under ``"result"``.

    :param answer: the decoded JSON answer.
    """
    return answer if isinstance(answer, dict) else {"result": answer}
