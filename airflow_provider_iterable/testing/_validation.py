"""Request validation of the simulator: bodies against Iterable's spec, and identifier rules.

Bodies are checked against the Swagger definitions in :mod:`._spec`; identifiers (e-mail
addresses, userIds) against the rules Iterable applies to them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jsonschema

from airflow_provider_iterable.testing._answers import ApiError
from airflow_provider_iterable.testing._spec import BODY_DEFINITIONS, DEFINITIONS

# Deliberately simple, like Iterable's own check: one @, no blanks, a dot in the domain.
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


def is_valid_email(value: Any) -> bool:
    """Return whether ``value`` is an e-mail address Iterable would accept."""
    return isinstance(value, str) and len(value) <= 254 and _EMAIL_RE.match(value) is not None


def is_valid_user_id(value: Any) -> bool:
    """Return whether ``value`` is a userId Iterable would accept (printable ASCII, no edge blanks)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 512
        and value.isascii()
        and value.isprintable()
        and value == value.strip()
    )


def valid_email(email: str) -> str:
    """Return ``email``, or raise the 400 ``InvalidEmailAddressError`` Iterable answers for it."""
    if not is_valid_email(email):
        raise ApiError(400, "InvalidEmailAddressError", f"Invalid email: {email}")
    return email


# ------------------------------------------------------------------------------ bodies
_VALIDATORS: dict[str, jsonschema.protocols.Validator] = {}
_Check = Callable[[Any], bool]
_CHECKS: dict[str, _Check] = {}
_TYPE_CHECKS: dict[str, _Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}
_SUPPORTED_KEYWORDS = {"type", "properties", "required", "items", "$ref", "format"}


def _compile(schema: dict[str, Any]) -> _Check:
    """Compile the JSON Schema subset the spec's definitions use into one fast yes/no check.

    Validating a 1,000-user bulk body with :mod:`jsonschema` costs more than storing it; this
    check gives the same verdict (it covers every keyword these definitions use) in a fraction of
    the time, and :mod:`jsonschema` still produces the message when a body fails.
    """
    unsupported = set(schema) - _SUPPORTED_KEYWORDS
    if unsupported:
        raise ValueError(f"cannot compile schema keywords {sorted(unsupported)}")
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]

        def check_ref(value: Any) -> bool:
            return check_body(name)(value)

        return check_ref
    checks: list[_Check] = []
    if "type" in schema:
        checks.append(_TYPE_CHECKS[schema["type"]])
    required = tuple(schema.get("required", ()))
    properties = {key: _compile(sub) for key, sub in schema.get("properties", {}).items()}
    items = _compile(schema["items"]) if "items" in schema else None

    def check(value: Any) -> bool:
        for type_check in checks:
            if not type_check(value):
                return False
        if isinstance(value, dict):
            for key in required:
                if key not in value:
                    return False
            for key, sub in properties.items():
                if key in value and not sub(value[key]):
                    return False
        elif items is not None and isinstance(value, list):
            for item in value:
                if not items(item):
                    return False
        return True

    return check


def check_body(definition: str) -> _Check:
    """Return the fast yes/no check of the spec's ``definition`` (compiled once)."""
    found = _CHECKS.get(definition)
    if found is None:
        found = _CHECKS[definition] = _compile(DEFINITIONS[definition])
    return found


def _validator(definition: str) -> jsonschema.protocols.Validator:
    validator = _VALIDATORS.get(definition)
    if validator is None:
        schema = {"$ref": f"#/definitions/{definition}", "definitions": DEFINITIONS}
        validator = _VALIDATORS[definition] = jsonschema.Draft7Validator(schema)
    return validator


def validate_body(endpoint: str, body: Any) -> None:
    """Raise a 400 ``BadParams`` naming the first field of ``body`` the spec does not allow.

    :param endpoint: ``"METHOD /api/path-template"``; an endpoint without a body definition in
        the spec accepts any body.
    :param body: the parsed JSON body.
    """
    definition = BODY_DEFINITIONS.get(endpoint)
    if definition is None or check_body(definition)(body):
        return
    validator = _validator(definition)
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is None:
        return
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    where = f" at {path}" if path else ""
    raise ApiError(400, "BadParams", f"Invalid request body{where}: {error.message}", {"field": path or None})
