"""The queue's admin helpers: tail, stats, infer_schema."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest

from airflow_provider_iterable.event_queue import EventQueue
from airflow_provider_iterable.event_queue.admin import (
    JSON_SCHEMA_DIALECT,
    infer_schema,
    schema_from_payloads,
    stats,
    tail,
)
from tests.event_queue.conftest import Clock, make_event


def test_tail_returns_the_newest_oldest_first(queue: EventQueue) -> None:
    ids = [
        queue.append(make_event(event_name=name), dedupe_window_seconds=60)[0]
        for name in ["emailSend", "emailOpen", "emailSend", "emailOpen", "emailSend"]
    ]
    assert [e.id for e in tail(queue, limit=3)] == ids[2:]
    assert [e.id for e in tail(queue, limit=10, event_name="emailOpen")] == [ids[1], ids[3]]
    assert [e.id for e in tail(queue, limit=1, event_name="emailOpen")] == [ids[3]]
    assert tail(queue, conn_id="elsewhere") == []
    assert tail(queue, kind="journey") == []
    with pytest.raises(ValueError, match="limit"):
        tail(queue, limit=0)
    with pytest.raises(ValueError, match="kind"):
        tail(queue, kind="sms")


def test_tail_filters_by_journey(queue: EventQueue) -> None:
    queue.append(make_event(kind="journey", event_name=None, workflow_id=1), dedupe_window_seconds=60)
    wanted = queue.append(
        make_event(kind="journey", event_name=None, workflow_id=2), dedupe_window_seconds=60
    )[0]
    assert [e.id for e in tail(queue, workflow_id=2, kind="journey")] == [wanted]


def test_stats_counts_and_ages(queue: EventQueue, clock: Clock) -> None:
    empty = stats(queue)
    assert empty["total"] == 0 and empty["head_id"] == 0
    assert empty["oldest_received_at"] is None and empty["newest_received_at"] is None
    start = clock.now
    queue.append(make_event(event_name="emailSend"), dedupe_window_seconds=60)
    clock.advance(hours=1)
    queue.append(make_event(event_name="emailSend", conn_id="iterable_eu"), dedupe_window_seconds=60)
    clock.advance(hours=1)
    last = queue.append(make_event(kind="journey", event_name=None, workflow_id=9), dedupe_window_seconds=60)[
        0
    ]
    queue.set_cursor("watcher", last - 1)
    result = stats(queue)
    assert result["total"] == 3 and result["head_id"] == last
    assert result["dialect"] == queue.dialect
    assert result["oldest_received_at"] == start.isoformat()
    assert result["newest_received_at"] == (start + timedelta(hours=2)).isoformat()
    assert result["by_conn_id"] == {"iterable_default": 2, "iterable_eu": 1}
    assert result["by_kind"] == {"system": 2, "journey": 1}
    assert result["by_event_name"] == {"emailSend": 2, "(none)": 1}
    assert {"conn_id": "iterable_eu", "kind": "system", "event_name": "emailSend", "count": 1} in result[
        "groups"
    ]
    assert result["consumers"] == [
        {"name": "watcher", "last_id": last - 1, "behind": 1, "updated_at": clock.now.isoformat()}
    ]
    assert result["size_bytes"] > 0


def test_stats_of_sqlite_counts_the_wal_file_too(tmp_path: Path) -> None:
    queue = EventQueue(f"sqlite:///{tmp_path / 'q.db'}")
    queue.append_many([make_event() for _ in range(50)], dedupe_window_seconds=60)
    on_disk = sum(p.stat().st_size for p in tmp_path.iterdir() if p.name.startswith("q.db"))
    assert stats(queue)["size_bytes"] == on_disk
    queue.close()


def _store(queue: EventQueue, payloads: list[dict[str, object]], event_name: str = "emailOpen") -> None:
    queue.append_many(
        [make_event(event_name=event_name, payload=p) for p in payloads], dedupe_window_seconds=60
    )


PAYLOADS: list[dict[str, object]] = [
    {
        "email": "a@example.com",
        "eventName": "emailOpen",
        "dataFields": {"campaignId": 1, "score": 3, "tags": ["x", "y"], "device": {"os": "ios", "v": 17}},
    },
    {
        "email": "b@example.com",
        "eventName": "emailOpen",
        "userId": None,
        "dataFields": {"campaignId": 2, "score": 2.5, "tags": [], "device": {"os": "android"}},
    },
    {
        "email": "c@example.com",
        "eventName": "emailOpen",
        "userId": "u-3",
        "dataFields": {"campaignId": 3, "score": None, "tags": [1], "items": [{"sku": "a", "qty": 1}]},
    },
]


def test_infer_schema_describes_every_sampled_payload(queue: EventQueue) -> None:
    _store(queue, PAYLOADS)
    _store(queue, [{"eventName": "emailSend", "other": True}], event_name="emailSend")
    schema = infer_schema(queue, event_name="emailOpen")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for payload in PAYLOADS:
        validator.validate(payload)
    assert schema["$schema"] == JSON_SCHEMA_DIALECT
    assert schema["type"] == "object"
    assert schema["required"] == ["dataFields", "email", "eventName"]
    fields = schema["properties"]["dataFields"]
    assert fields["required"] == ["campaignId", "score", "tags"]
    assert fields["properties"]["campaignId"] == {"type": "integer"}
    assert fields["properties"]["score"] == {"type": ["number", "null"]}
    assert fields["properties"]["tags"] == {"type": "array", "items": {"type": ["string", "integer"]}}
    assert fields["properties"]["device"]["required"] == ["os"]
    assert fields["properties"]["items"]["items"]["required"] == ["qty", "sku"]
    assert schema["properties"]["userId"] == {"type": ["string", "null"]}
    # The schema is useful: a payload that lost a field every sample had fails it.
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"email": "d@example.com", "eventName": "emailOpen"})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**PAYLOADS[0], "email": 42})


def test_infer_schema_samples_only_the_newest_matching_events(queue: EventQueue) -> None:
    _store(queue, [{"old": 1}])
    _store(queue, [{"new": "a"}, {"new": "b"}])
    schema = infer_schema(queue, event_name="emailOpen", limit=2)
    assert schema["required"] == ["new"] and "old" not in schema["properties"]
    assert "2 stored" in schema["description"]


def test_infer_schema_filters_by_journey_and_connection(queue: EventQueue) -> None:
    queue.append(
        make_event(kind="journey", event_name=None, workflow_id=7, payload={"email": "a@x", "plan": "pro"}),
        dedupe_window_seconds=60,
    )
    queue.append(
        make_event(
            kind="journey", event_name=None, workflow_id=8, payload={"phone": "+1"}, conn_id="iterable_eu"
        ),
        dedupe_window_seconds=60,
    )
    assert infer_schema(queue, workflow_id=7)["required"] == ["email", "plan"]
    assert infer_schema(queue, conn_id="iterable_eu")["required"] == ["phone"]
    with pytest.raises(ValueError, match="workflow_id=8"):
        infer_schema(queue, workflow_id=8, conn_id="iterable_default")


def test_infer_schema_without_samples_is_a_clear_error(queue: EventQueue) -> None:
    with pytest.raises(ValueError, match="no stored events match"):
        infer_schema(queue, event_name="emailOpen")
    with pytest.raises(ValueError, match="no payloads"):
        schema_from_payloads([])
