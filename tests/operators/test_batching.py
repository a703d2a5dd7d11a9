"""The batching helpers on their own: limits, merging of answers, formats, progress."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_iterable.operators._batches import batches, prefetch
from airflow_provider_iterable.operators._files import resolve_format
from airflow_provider_iterable.operators._records import check_field_types, convert_cell
from airflow_provider_iterable.operators._summary import BulkSummary, Progress


def test_batches_respect_count_and_bytes() -> None:
    items = [{"email": f"u{i}@example.com"} for i in range(2_500)]
    assert [len(b) for b in batches(iter(items), max_count=1_000, max_bytes=4_000_000)] == [1000, 1000, 500]
    small = list(batches(iter(items), max_count=1_000, max_bytes=10_000))
    assert all(len(json.dumps({"users": b})) < 10_000 for b in small)
    assert [i for b in small for i in b] == items
    assert max(len(b) for b in small) > 300  # batches are filled, not one item each


def test_summary_merges_batches_and_caps_identifiers() -> None:
    summary = BulkSummary(failed_ids_cap=3, events=True)
    summary.add(
        {
            "successCount": 5,
            "failCount": 2,
            "failedUpdates": {"invalidEmails": ["a", "b"], "notFoundEmails": []},
            "createdFields": ["x"],
        },
        sent=7,
    )
    summary.add(
        {
            "successCount": 1,
            "failCount": 2,
            "failedUpdates": {"invalidEmails": ["c", "d"]},
            "createdFields": ["x", "y"],
            "disallowedEventNames": ["bad"],
        },
        sent=3,
    )
    # An old-style answer with only the deprecated top-level list.
    summary.add({"successCount": 0, "failCount": 1, "invalidUserIds": ["u"]}, sent=1)
    assert summary.to_dict() == {
        "batches": 3,
        "successCount": 6,
        "failCount": 5,
        "failedUpdates": {"invalidEmails": ["a", "b", "c"], "invalidUserIds": ["u"]},
        "failedUpdateCounts": {"invalidEmails": 4, "invalidUserIds": 1},
        "createdFields": ["x", "y"],
        "filteredOutFields": [],
        "disallowedEventNames": ["bad"],
    }
    text = summary.failure_text("event")
    assert text.startswith("5 of 11 events failed in Iterable after all 3 batches were sent")
    # Counts only: identifiers are personal data, kept in the XCom summary and DEBUG lines.
    assert "invalidEmails: 4; invalidUserIds: 1" in text
    assert not {"a", "b", "c", "u"} & set(text.replace(";", " ").replace(",", " ").split())
    assert "disallowed event names: bad" in text


def test_formats_and_field_types() -> None:
    assert resolve_format("s3://bucket/users.JSONL.gz", None, "users_file") == "jsonl"
    assert resolve_format("/data/x.csv", None, "users_file") == "csv"
    assert resolve_format("/data/x.txt", "ndjson", "users_file") == "jsonl"
    with pytest.raises(AirflowFailException, match="file_format is 'xml'"):
        resolve_format("/data/x.csv", "xml", "users_file")
    assert check_field_types({"a": "Integer", "b": "boolean", "c": "date"}) == {
        "a": "int",
        "b": "bool",
        "c": "date",
    }
    with pytest.raises(AirflowFailException, match=r"field_types\['a'\] is 'money'"):
        check_field_types({"a": "money"})
    # Every alias the bulk-loading guide lists, in any case.
    assert check_field_types(
        {"a": "LONG", "b": "double", "c": "String", "d": "Boolean", "e": "integer", "f": "Date"}
    ) == {"a": "int", "b": "float", "c": "str", "d": "bool", "e": "int", "f": "date"}
    # A date cell may also be in Iterable's own format.
    assert convert_cell("2026-12-31 09:30:00 +00:00", "date", "users_file line 2", "d") == (
        "2026-12-31 09:30:00 +00:00"
    )
    assert convert_cell("2026-12-31T09:30:00+02:00", "date", "users_file line 2", "d") == (
        "2026-12-31 07:30:00 +00:00"
    )


def test_prefetch_passes_values_and_errors() -> None:
    assert list(prefetch(iter(range(50)), depth=2)) == list(range(50))

    def broken() -> Any:
        yield 1
        raise ValueError("line 2 is bad")

    out = []
    with pytest.raises(ValueError, match="line 2 is bad"):
        for value in prefetch(broken()):
            out.append(value)
    assert out == [1]


def test_progress_logs_every_few_batches(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = logging.getLogger("test.progress")
    progress = Progress(log, "user", 5_000, every=2, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for _ in range(5):
            now[0] += 0.5
            progress.batch_sent(1_000)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "Sent 1000 of 5000 users in 1 batches (2000 users/s)",
        "Sent 2000 of 5000 users in 2 batches (2000 users/s)",
        "Sent 4000 of 5000 users in 4 batches (2000 users/s)",
        "Sent 5000 of 5000 users in 5 batches (2000 users/s)",
    ]


def test_sender_without_an_operator_yields_each_batch_with_what_iterable_accepted(simulator: Any) -> None:
    # What a caller that is not an operator (a sync engine) does: one hook, records in, one
    # result per batch out, in reading order, telling accepted records from rejected ones.
    from airflow_provider_iterable.hooks.iterable import IterableHook
    from airflow_provider_iterable.operators._batches import BatchLimits, BulkSender

    hook = IterableHook()
    records = [{"email": f"s{i}@example.com", "dataFields": {"n": i}} for i in range(10)]
    records[3] = {"email": "not-an-email", "dataFields": {"n": 3}}
    records[7] = {"email": "also-bad", "dataFields": {"n": 7}}
    sender = BulkSender(
        hook.bulk_update_users, limits=BatchLimits(max_count=4, max_in_flight=2), noun="user", read_ahead=0
    )

    results = list(sender.send(iter(records)))

    assert [(r.number, r.first, len(r.records)) for r in results] == [(1, 1, 4), (2, 5, 4), (3, 9, 2)]
    assert [r["dataFields"]["n"] for r in results[0].accepted()] == [0, 1, 2]
    assert [r["email"] for r in results[0].not_accepted()] == ["not-an-email"]
    assert [r["dataFields"]["n"] for r in results[1].accepted()] == [4, 5, 6]
    assert [r["dataFields"]["n"] for r in results[2].accepted()] == [8, 9]
    assert sender.summary.to_dict()["failedUpdateCounts"] == {"invalidEmails": 2}
    assert simulator.get_user(email="s9@example.com")["dataFields"]["n"] == 9


def test_accepted_records_are_none_when_iterable_does_not_name_every_failure() -> None:
    from airflow_provider_iterable.operators._batches import BatchResult

    records = [{"email": "a@example.com"}, {"userId": "u-1"}, {"eventName": "no", "email": "b@example.com"}]
    named = BatchResult(
        1,
        1,
        records,
        {"failCount": 2, "failedUpdates": {"invalidUserIds": ["u-1"]}, "disallowedEventNames": ["no"]},
    )
    assert named.accepted() == [records[0]]
    # Case does not matter in e-mail addresses.
    assert (
        BatchResult(1, 1, records[:1], {"failCount": 1, "invalidEmails": ["A@Example.com"]}).accepted() == []
    )
    unnamed = BatchResult(1, 1, records, {"successCount": 1, "failCount": 2, "failedUpdates": {}})
    assert unnamed.accepted() == [] and unnamed.not_accepted() == records
    assert BatchResult(1, 1, records, None).accepted() == []
    assert BatchResult(1, 1, records, {"successCount": 3, "failCount": 0}).accepted() == records
