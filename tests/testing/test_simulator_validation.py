"""The simulator's fast body check gives the same verdict as jsonschema on Iterable's spec."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_iterable.testing._spec import BODY_DEFINITIONS, DEFINITIONS
from airflow_provider_iterable.testing._validation import check_body as _check

FIELDS = sorted(
    {name for definition in DEFINITIONS.values() for name in definition.get("properties", {})} | {"unknown"}
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1.0, 5001.0, -3.0]),
    st.text(max_size=5),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)
    ),
    max_leaves=12,
)

_VALID_SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=5),
    "integer": st.one_of(st.integers(-(2**40), 2**40), st.sampled_from([7.0, 2.5, True])),
    "boolean": st.booleans(),
    "number": st.floats(allow_nan=False, allow_infinity=False),
}


def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nine times in ten a value of the right shape, else anything."""
    return st.integers(0, 9).flatmap(lambda n: valid if n else values)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Bodies shaped after a spec definition, with wrong types and missing keys mixed in."""
    if "$ref" in schema:
        return st.deferred(lambda: from_schema(DEFINITIONS[schema["$ref"].rsplit("/", 1)[1]]))
    kind = schema.get("type")
    if kind == "array":
        return _mostly(st.lists(from_schema(schema.get("items", {})), max_size=3))
    if kind == "object":
        properties = {name: from_schema(sub) for name, sub in schema.get("properties", {}).items()}
        required = [name for name in schema.get("required", []) if name in properties]
        shaped = st.fixed_dictionaries(
            {name: properties[name] for name in required},
            optional={name: sub for name, sub in properties.items() if name not in required},
        )
        return _mostly(st.one_of(shaped, st.dictionaries(st.sampled_from(FIELDS), values, max_size=4)))
    return _mostly(_VALID_SCALARS.get(kind or "", values))


@pytest.mark.parametrize("definition", sorted(set(BODY_DEFINITIONS.values())))
def test_fast_check_agrees_with_jsonschema(definition: str) -> None:
    schema = {"$ref": f"#/definitions/{definition}", "definitions": DEFINITIONS}
    validator = jsonschema.Draft7Validator(schema)
    verdicts: list[bool] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=from_schema(DEFINITIONS[definition]))
    def agree(body: Any) -> None:
        verdict = validator.is_valid(body)
        verdicts.append(verdict)
        assert _check(definition)(body) == verdict

    agree()
    # Both verdicts were exercised, so agreement means something.
    assert True in verdicts and False in verdicts


def test_every_served_body_endpoint_has_a_definition() -> None:
    assert set(BODY_DEFINITIONS) == {
        "POST /api/users/update",
        "POST /api/users/bulkUpdate",
        "POST /api/users/updateSubscriptions",
        "POST /api/lists",
        "POST /api/lists/subscribe",
        "POST /api/lists/unsubscribe",
        "POST /api/events/track",
        "POST /api/events/trackBulk",
        "POST /api/email/target",
        "POST /api/sms/target",
        "POST /api/workflows/triggerWorkflow",
    }
    for name in BODY_DEFINITIONS.values():
        assert DEFINITIONS[name]["type"] == "object"
