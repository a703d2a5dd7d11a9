"""Bulk records: the shape of each kind, the checks every record passes, and CSV cell types.

A bulk record is an item in Iterable's own shape (``{"email": ..., "dataFields": {...}}``),
passed through as given. Only what would make Iterable refuse a whole request (a record with no
identity, ``dataFields`` that is no object) is checked here, before anything is sent; what
Iterable reports per record (a malformed e-mail address) is left to Iterable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_iterable._values import iterable_datetime, json_list, parse_datetime_text
from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.operators._base import fail

#: The types ``field_types`` gives a CSV column.
FIELD_TYPES = ("str", "int", "float", "bool", "date")
#: Other names of those types, as Iterable's field types and other tools spell them.
FIELD_TYPE_ALIASES = {"string": "str", "integer": "int", "long": "int", "double": "float", "boolean": "bool"}
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_TYPE_HINTS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true/false, yes/no or 1/0",
    "date": "an ISO-8601 date such as 2026-11-27 or 2026-11-27T09:30:00Z",
}


@dataclass(frozen=True)
class ItemShape:
    """How one kind of bulk record looks and which CSV columns are top-level fields.

    :param noun: what one record is, for messages (``"user"``, ``"subscriber"``, ``"event"``).
    :param columns: CSV columns that are top-level fields, with their type; every other
        non-empty cell goes into ``dataFields``.
    :param required: top-level fields every record must carry (besides ``email``/``userId``).
    :param allow_bare_email: whether a bare string is accepted as ``{"email": <string>}``.
    """

    noun: str
    columns: Mapping[str, str]
    required: tuple[str, ...] = ()
    allow_bare_email: bool = False


USER_SHAPE = ItemShape("user", {"email": "str", "userId": "str"})
SUBSCRIBER_SHAPE = ItemShape("subscriber", {"email": "str", "userId": "str"}, allow_bare_email=True)
EVENT_SHAPE = ItemShape(
    "event",
    {
        "email": "str",
        "userId": "str",
        "eventName": "str",
        "id": "str",
        "createdAt": "int",
        "campaignId": "int",
        "templateId": "int",
    },
    required=("eventName",),
)


def check_item(item: Any, shape: ItemShape, where: str) -> dict[str, Any]:
    """Return ``item`` as an Iterable-shaped record or fail naming ``where``.

    Iterable answers a whole bulk request with 400 when one record has no identity, so that is
    checked here, before anything is sent. Malformed e-mail addresses are left to Iterable, which
    reports them per record (``failedUpdates.invalidEmails``).

    :param item: one record as given (a dict, or a bare e-mail string where allowed).
    :param shape: the kind of record.
    :param where: where it came from, e.g. ``"users[3]"`` or ``"users_file line 17"``.
    """
    if isinstance(item, str) and shape.allow_bare_email:
        text = item.strip()
        if not text:
            raise fail(f"{where}: empty e-mail address")
        return {"email": text}
    if not isinstance(item, Mapping):
        bare = " or an e-mail address string" if shape.allow_bare_email else ""
        raise fail(
            f"{where}: a {shape.noun} must be a JSON object{bare} such as "
            f'{{"email": "ada@example.com", "dataFields": {{...}}}}, got {type(item).__name__}'
        )
    record = item if isinstance(item, dict) else dict(item)
    email, user_id = record.get("email"), record.get("userId")
    if not (isinstance(email, str) and email) and not (isinstance(user_id, str) and user_id):
        raise fail(f'{where}: the {shape.noun} has neither "email" nor "userId" (a non-empty string)')
    for field in shape.required:
        value = record.get(field)
        if not (isinstance(value, str) and value):
            raise fail(f'{where}: the {shape.noun} has no "{field}" (a non-empty string)')
    data_fields = record.get("dataFields")
    if data_fields is not None and not isinstance(data_fields, Mapping):
        raise fail(f'{where}: "dataFields" must be a JSON object, got {type(data_fields).__name__}')
    return record


def list_items(value: Any, param: str) -> Sequence[Any]:
    """Return an in-memory bulk input (a list, or a JSON list rendered from a template).

    :param value: the rendered argument.
    :param param: the parameter it came from, for the message (``"users"``).
    """
    try:
        return json_list(value, param)
    except IterableConfigError as exc:
        raise fail(f"{exc}; expected a list of records such as [{{'email': ...}}]") from None


def check_field_types(field_types: Any) -> dict[str, str]:
    """Return ``field_types`` (CSV column → type) or fail naming the column and the allowed types.

    :param field_types: the rendered argument: a mapping of column names to one of
        :data:`FIELD_TYPES` or :data:`FIELD_TYPE_ALIASES` (case-insensitive), or ``None``.
    """
    if field_types is None:
        return {}
    if not isinstance(field_types, Mapping):
        raise fail(f"field_types must be a dict of CSV column -> one of {', '.join(FIELD_TYPES)}")
    out: dict[str, str] = {}
    for column, kind in field_types.items():
        name = str(kind).strip().lower()
        name = FIELD_TYPE_ALIASES.get(name, name)
        if name not in FIELD_TYPES:
            raise fail(
                f"field_types[{column!r}] is {kind!r}; use one of {', '.join(FIELD_TYPES)} "
                "(cells of columns not listed are sent as strings)"
            )
        out[str(column)] = name
    return out


def _cell_value(text: str, kind: str) -> Any:
    """Return the cell as ``kind``, or raise ``ValueError`` when it is not one."""
    if kind == "str":
        return text
    if kind == "int":
        return int(text)
    if kind == "float":
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(text)
        return value
    if kind == "bool":
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(text)
    return iterable_datetime(parse_datetime_text(text))


def convert_cell(text: str, kind: str, where: str, column: str) -> Any:
    """Return one CSV cell converted to its column's type, or fail naming the line and column.

    :param text: the cell as read.
    :param kind: one of :data:`FIELD_TYPES`.
    :param where: the line it came from (``"users_file line 17"``).
    :param column: the column's name.
    """
    try:
        return _cell_value(text, kind)
    except ValueError:
        pass
    raise fail(
        f"{where}: column {column!r} is typed {kind} in field_types but holds {text!r}; "
        f"expected {_TYPE_HINTS[kind]}"
    )
