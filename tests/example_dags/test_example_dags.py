"""The example DAGs parse cleanly and run end to end against the simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.operators.conftest import run_dag, states, xcom

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
OURS = {"example_iterable_onboarding", "example_iterable_subscriptions", "example_iterable_journey"}


@pytest.fixture(scope="module")
def bag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(EXAMPLES))


def test_example_dags_parse_without_import_errors(bag: Any) -> None:
    assert bag.import_errors == {}
    assert set(bag.dag_ids) >= OURS
    for dag_id in OURS:
        dag = bag.dags[dag_id]
        assert "iterable" in dag.tags
        assert dag.task_ids, dag_id


def test_onboarding_example_runs_end_to_end(
    bag: Any, airflow_db: Any, simulator: Any, tmp_path: Path
) -> None:
    users = [{"email": f"new{i}@example.com", "dataFields": {"firstName": f"N{i}"}} for i in range(3)]
    users_file = tmp_path / "new_users.jsonl"
    users_file.write_text("".join(json.dumps(u) + "\n" for u in users))
    simulator.add_user(email="ada@example.com")

    run = run_dag(
        bag.dags["example_iterable_onboarding"],
        run_conf={"users_file": str(users_file), "welcome_email": "ada@example.com"},
    )

    assert set(states(run).values()) == {"success"}
    (bulk,) = simulator.requests_for("POST /api/users/bulkUpdate")
    assert bulk.json == {"users": users, "createNewFields": True}
    list_id = xcom(run, "create_list")
    assert simulator.list_members(list_id) == {u["email"] for u in users}
    run_day = run.run_after.strftime("%Y-%m-%d")
    assert simulator.lists[list_id]["name"] == f"Onboarding {run_day}"
    (event,) = simulator.requests_for("POST /api/events/track")
    assert event.json["eventName"] == "onboarded"
    assert event.json["dataFields"] == {"listId": str(list_id), "usersLoaded": "3"}
    (sms,) = simulator.requests_for("POST /api/sms/target")
    assert sms.json["campaignId"] == 2001
    assert sms.json["recipientEmail"] == "ada@example.com"
    assert sms.json["dataFields"] == {"listName": f"Onboarding {run_day}"}


def test_journey_and_subscription_examples_run(
    bag: Any, airflow_db: Any, simulator: Any, tmp_path: Path
) -> None:
    events_file = tmp_path / "events.jsonl"
    events_file.write_text(json.dumps({"eventName": "vipVisit", "email": "ada@example.com"}) + "\n")
    opt_outs = tmp_path / "opt_outs.csv"
    opt_outs.write_text("email\nada@example.com\nnobody@example.com\n")
    simulator.add_user(email="grace@example.com")
    vip = simulator.add_list("VIP")

    journey = run_dag(
        bag.dags["example_iterable_journey"],
        run_conf={"vip_list_id": vip, "events_file": str(events_file)},
    )

    assert set(states(journey).values()) == {"success"}
    assert "start_journey_per_user[1]" in states(journey)
    triggers = [r.json for r in simulator.requests_for("POST /api/workflows/triggerWorkflow")]
    assert sorted(t.get("email") or f"list {t['listId']}" for t in triggers) == sorted(
        ["ada@example.com", "grace@example.com", f"list {vip}"]
    )
    (email,) = simulator.requests_for("POST /api/email/target")
    assert email.json["metadata"] == {"dagRunId": journey.run_id}

    subscriptions = run_dag(
        bag.dags["example_iterable_subscriptions"],
        run_conf={
            "email": "ada@example.com",
            "list_ids": [vip],
            "newsletter_list_id": vip,
            "opt_out_file": str(opt_outs),
        },
    )

    assert set(states(subscriptions).values()) == {"success"}
    (update,) = simulator.requests_for("POST /api/users/updateSubscriptions")
    assert update.json == {"email": "ada@example.com", "emailListIds": [vip]}
    (unsub,) = simulator.requests_for("POST /api/lists/unsubscribe")
    assert unsub.json == {
        "listId": vip,
        "subscribers": [{"email": "ada@example.com"}, {"email": "nobody@example.com"}],
    }
    assert xcom(subscriptions, "get_profile")["email"] == "ada@example.com"
