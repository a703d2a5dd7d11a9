"""Event operators through Airflow: derived event ids, dynamic task mapping, bulk tracking."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from airflow_provider_iterable.operators import IterableTrackBulkEventsOperator, IterableTrackEventOperator
from tests.operators.conftest import START, states, xcom

TRACK = "POST /api/events/track"


def _expected_id(dag_id: str, task_id: str, run_id: str, map_index: int, *suffix: object) -> str:
    text = "\x1f".join(str(p) for p in (dag_id, task_id, run_id, map_index, *suffix))
    return hashlib.sha256(text.encode()).hexdigest()


def test_track_event_and_mapped_tracks_send_task_derived_ids(dag_runner: Any, simulator: Any) -> None:
    with DAG("iterable_events_track", schedule=None, start_date=START) as dag:
        IterableTrackEventOperator(
            task_id="track",
            event_name="dagFinished",
            user_id="u-1",
            data_fields={"rows": 3},
            created_at=dt.datetime(2026, 11, 27, 9, 30),  # naive: UTC
            campaign_id="1001",
            create_new_fields=True,
        )
        IterableTrackEventOperator(
            task_id="explicit",
            event_name="dagFinished",
            email="ada@example.com",
            event_id="evt-{{ run_id }}",
            created_at=1_790_000_000,
        )
        IterableTrackEventOperator.partial(task_id="mapped", event_name="welcome").expand(
            email=["m0@example.com", "m1@example.com", "m2@example.com"]
        )

    run = dag_runner(dag)

    assert set(states(run).values()) == {"success"}
    assert len(states(run)) == 5
    bodies = {(r.json.get("email") or r.json.get("userId")): r.json for r in simulator.requests_for(TRACK)}
    assert bodies["u-1"] == {
        "eventName": "dagFinished",
        "userId": "u-1",
        "id": _expected_id(dag.dag_id, "track", run.run_id, -1),
        "createdAt": int(dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.timezone.utc).timestamp()),
        "dataFields": {"rows": 3},
        "campaignId": 1001,
        "createNewFields": True,
    }
    assert bodies["ada@example.com"] == {
        "eventName": "dagFinished",
        "email": "ada@example.com",
        "id": f"evt-{run.run_id}",
        "createdAt": 1_790_000_000,
    }
    for i in range(3):
        assert bodies[f"m{i}@example.com"]["id"] == _expected_id(dag.dag_id, "mapped", run.run_id, i)
        assert xcom(run, "mapped", map_index=i)["code"] == "Success"
    assert len({e["id"] for e in simulator.events}) == 5


def test_track_event_retry_updates_rather_than_duplicates(simulator: Any) -> None:
    class _TI:
        dag_id, task_id, run_id, map_index = "d", "t", "manual__1", -1

    op = IterableTrackEventOperator(task_id="t", event_name="e", email="ada@example.com")
    op.execute({"ti": _TI()})  # type: ignore[arg-type]
    op.execute({"ti": _TI()})  # type: ignore[arg-type]  # a second try of the same task instance
    first, second = simulator.requests_for(TRACK)
    assert first.json["id"] == second.json["id"] == _expected_id("d", "t", "manual__1", -1)
    assert len(simulator.events) == 1


def test_bulk_events_from_file_report_disallowed_names(
    dag_runner: Any, simulator: Any, tmp_path: Path
) -> None:
    simulator.disallow_event_name("forbidden")
    events = [
        {"eventName": "purchase", "email": f"e{i}@example.com", "dataFields": {"i": i}} for i in range(5)
    ]
    events.append({"eventName": "forbidden", "email": "x@example.com", "id": "given-id"})
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    with DAG("iterable_events_bulk", schedule=None, start_date=START) as dag:
        bulk = IterableTrackBulkEventsOperator(task_id="bulk", events_file=str(path), batch_size=4)
        tolerant = IterableTrackBulkEventsOperator(
            task_id="tolerant", events=events[:2], derive_event_ids=False, fail_on_partial_failure=False
        )
        tolerant >> bulk

    run = dag_runner(dag)

    assert states(run) == {"bulk": "failed", "tolerant": "success"}
    tolerant_call, *calls = simulator.requests_for("POST /api/events/trackBulk")
    assert tolerant_call.json == {"events": events[:2]}  # derive_event_ids=False: sent as given
    calls.sort(key=lambda c: -len(c.json["events"]))  # the two batches may arrive in either order
    assert [len(c.json["events"]) for c in calls] == [4, 2]
    sent = [e for c in calls for e in c.json["events"]]
    for index, event in enumerate(sent[:5]):
        assert event == {**events[index], "id": _expected_id(dag.dag_id, "bulk", run.run_id, -1, index)}
    assert sent[5] == events[5]  # an event's own id is kept
    summary = xcom(run, "bulk")
    assert summary["disallowedEventNames"] == ["forbidden"]
    assert summary["batches"] == 2
    assert summary["successCount"] == 5
    assert xcom(run, "tolerant")["successCount"] == 2


def test_bulk_events_from_csv_type_the_top_level_columns(simulator: Any, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "eventName,email,id,createdAt,campaignId,amount,coupon\n"
        "purchase,ada@example.com,order-1,1790000000,1001,12.5,SAVE10\n"
    )
    op = IterableTrackBulkEventsOperator(
        task_id="bulk", events_file=str(path), field_types={"amount": "float"}
    )
    summary = op.execute({})  # type: ignore[arg-type]
    (call,) = simulator.requests_for("POST /api/events/trackBulk")
    assert call.json == {
        "events": [
            {
                "eventName": "purchase",
                "email": "ada@example.com",
                "id": "order-1",
                "createdAt": 1_790_000_000,
                "campaignId": 1001,
                "dataFields": {"amount": 12.5, "coupon": "SAVE10"},
            }
        ]
    }
    assert summary["successCount"] == 1
