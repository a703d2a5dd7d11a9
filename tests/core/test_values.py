"""The shared value checks: whole numbers, JSON text or mappings, dotted paths, Iterable's dates."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from airflow_provider_iterable._values import (
    MISSING,
    as_utc_datetime,
    id_like,
    is_number,
    is_whole_number,
    iterable_datetime,
    json_list,
    json_object,
    lookup_path,
    parse_datetime_text,
    pick_paths,
    whole_number,
)
from airflow_provider_iterable.exceptions import IterableConfigError


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (3, {}, True),
        (True, {}, False),
        (3.0, {}, False),
        ("3", {}, False),
        (0, {"minimum": 1}, False),
        (1, {"minimum": 1}, True),
        (11, {"maximum": 10}, False),
        (-5, {"minimum": -5, "maximum": 5}, True),
    ],
)
def test_is_whole_number(value: object, kwargs: dict[str, int], expected: bool) -> None:
    assert is_whole_number(value, **kwargs) is expected


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (0.5, {}, True),
        (2, {}, True),
        (False, {}, False),
        (float("nan"), {}, False),
        (float("inf"), {}, False),
        (0, {"positive": True}, False),
        (0.1, {"positive": True}, True),
        (5, {"maximum": 4}, False),
    ],
)
def test_is_number(value: object, kwargs: dict[str, object], expected: bool) -> None:
    assert is_number(value, **kwargs) is expected  # type: ignore[arg-type]


def test_whole_number_names_the_value_and_bounds() -> None:
    assert whole_number(5, "limit", minimum=1) == 5
    with pytest.raises(IterableConfigError, match=r"limit must be a whole number from 1 to 10, got True"):
        whole_number(True, "limit", minimum=1, maximum=10)
    with pytest.raises(IterableConfigError, match="of at least 1"):
        whole_number(0, "max_batch", minimum=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, 42),
        ("42", 42),
        (" 7 ", 7),
        (42.0, 42),
        (42.5, None),
        (-1, None),
        (True, None),
        ("4x", None),
        (2**63, None),
        ("9" * 20, None),
        (None, None),
        ([1], None),
    ],
)
def test_id_like(value: object, expected: int | None) -> None:
    assert id_like(value) == expected


def test_json_object_takes_mappings_and_json_text() -> None:
    assert json_object({"a": 1}, "extra") == {"a": 1}
    assert json_object('{"a": 1}', "extra") == {"a": 1}
    assert json_object(None, "extra") is None
    assert json_object("  ", "extra") is None
    with pytest.raises(IterableConfigError, match="extra must be a JSON object, got text that is not JSON"):
        json_object("{nope", "extra")
    with pytest.raises(IterableConfigError, match="got list"):
        json_object("[1]", "extra")


def test_json_list() -> None:
    assert json_list([1, 2], "users") == [1, 2]
    assert json_list((1,), "users") == [1]
    assert json_list("[3]", "users") == [3]
    with pytest.raises(IterableConfigError, match="users must be a list"):
        json_list('{"a": 1}', "users")
    with pytest.raises(IterableConfigError, match="not JSON"):
        json_list("[", "users")


def test_lookup_path_walks_objects_and_lists() -> None:
    doc = {"a": {"b": [{"c": 1}, {"c": None}]}}
    assert lookup_path(doc, "a.b.0.c") == 1
    assert lookup_path(doc, "a.b.1.c") is None
    assert lookup_path(doc, "a.b.2.c") is MISSING
    assert lookup_path(doc, "a.x") is MISSING
    assert lookup_path(doc, "a.b.c") is MISSING
    assert not MISSING


def test_pick_paths_keeps_the_nesting() -> None:
    doc = {"email": "a@example.com", "dataFields": {"plan": "pro", "age": 3}, "other": 1}
    assert pick_paths(doc, ["email", "dataFields.plan", "missing.x"]) == {
        "email": "a@example.com",
        "dataFields": {"plan": "pro"},
    }
    # A whole subtree already picked is not split by a deeper path.
    assert pick_paths(doc, ["email", "email.x"]) == {"email": "a@example.com"}


def test_dates_in_iterables_format() -> None:
    moment = datetime(2026, 11, 27, 4, 5, 6, tzinfo=timezone(timedelta(hours=1)))
    assert iterable_datetime(moment) == "2026-11-27 03:05:06 +00:00"
    assert iterable_datetime(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02 03:04:05 +00:00"
    utc = datetime(2026, 11, 27, 3, 5, tzinfo=timezone.utc)
    assert parse_datetime_text("2026-11-27 03:05:00 +00:00") == utc
    assert parse_datetime_text("2026-11-27T03:05:00Z") == utc
    assert parse_datetime_text("2026-11-27T04:05:00+01:00") == utc
    assert parse_datetime_text("2026-11-27 03:05") == utc
    with pytest.raises(ValueError):
        parse_datetime_text("yesterday")


def test_as_utc_datetime() -> None:
    assert as_utc_datetime(date(2026, 1, 2), "start") == datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert as_utc_datetime("2026-01-02", "start") == datetime(2026, 1, 2, tzinfo=timezone.utc)
    with pytest.raises(IterableConfigError, match="start must be a datetime or an ISO-8601 string"):
        as_utc_datetime(12, "start")
