"""Field types of the simulated project: a field's type is fixed by the first value it gets.

Iterable types every user and event field the first time it sees it (``long``, ``double``,
``string``, ``boolean``, ``object``, ``nested``) and refuses later values of another type.
"""

from __future__ import annotations

from typing import Any


class FieldTypeMismatch(ValueError):
    """Values of ``data`` whose type differs from the one the project knows (caught per request)."""


def _value_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        # Iterable types an array by its elements: a list of strings is a "string" field.
        for item in value:
            item_type = _value_type(item)
            if item_type is not None:
                return "nested" if item_type == "object" else item_type
    return None


def _flatten_types(data: dict[str, Any], prefix: str = "") -> dict[str, tuple[str, Any]]:
    """Map every (dotted) field path in ``data`` to its type and value."""
    out: dict[str, tuple[str, Any]] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        value_type = _value_type(value)
        if value_type is None:
            continue
        out[path] = (value_type, value)
        if isinstance(value, dict):
            out.update(_flatten_types(value, f"{path}."))
        elif value_type == "nested":
            for item in value:
                if isinstance(item, dict):
                    out.update(_flatten_types(item, f"{path}."))
    return out


def _compatible(known: str, incoming: str, value: Any) -> bool:
    if known == incoming:
        return True
    if known == "double" and incoming == "long":
        return True
    # 2.0 is how many JSON encoders write the integer 2.
    return known == "long" and incoming == "double" and isinstance(value, float) and value.is_integer()


def merge_fields(old: dict[str, Any], new: dict[str, Any], nested: bool) -> dict[str, Any]:
    """Return ``old`` updated with ``new``; nested objects are merged only when ``nested``."""
    merged = dict(old)
    for key, value in new.items():
        if nested and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_fields(merged[key], value, nested=True)
        else:
            # The parsed request body belongs to this call alone: its values can be kept as they are.
            merged[key] = value
    return merged


class FieldTypes:
    """The project's field schema: a field's type is fixed by its first value."""

    def __init__(self) -> None:
        self.types: dict[str, str] = {}

    def check(
        self, data: dict[str, Any], allow_new: bool
    ) -> tuple[dict[str, Any], dict[str, tuple[str, Any]], list[str], list[str]]:
        """Check ``data`` against the known types.

        :return: the data to store (unknown top-level fields dropped unless ``allow_new``), its
            flattened field types (for :meth:`register`), the fields it would create and the
            fields it filtered out.
        :raises FieldTypeMismatch: naming the fields whose type differs from the known one.
        """
        flat = _flatten_types(data)
        mismatched = [
            f"{path} (is {self.types[path]}, got {kind})"
            for path, (kind, value) in flat.items()
            if path in self.types and not _compatible(self.types[path], kind, value)
        ]
        if mismatched:
            raise FieldTypeMismatch("; ".join(mismatched))
        filtered: list[str] = []
        if not allow_new:
            known_roots = {path.split(".", 1)[0] for path in self.types}
            filtered = [key for key in data if key not in known_roots]
            if filtered:
                data = {k: v for k, v in data.items() if k not in filtered}
                flat = _flatten_types(data)
        created = [path for path in flat if path not in self.types]
        return data, flat, created, filtered

    def register(self, flat: dict[str, tuple[str, Any]]) -> None:
        """Record the types of fields seen for the first time."""
        for path, (kind, _) in flat.items():
            self.types.setdefault(path, kind)
