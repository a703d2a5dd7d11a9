"""List operators through Airflow: create (and reuse), list, subscribe and unsubscribe with XComs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_iterable.operators import (
    IterableAddSubscribersToListOperator,
    IterableCreateListOperator,
    IterableListProjectListsOperator,
    IterableRemoveSubscribersFromListOperator,
)
from tests.operators.conftest import START, states, xcom


def test_create_subscribe_unsubscribe_through_xcom(dag_runner: Any, simulator: Any, tmp_path: Path) -> None:
    existing = simulator.add_list("Newsletter", "already there")
    members = tmp_path / "members.csv"
    members.write_text("email,firstName\nf1@example.com,Fay\nf2@example.com,\n")
    with DAG("iterable_lists_roundtrip", schedule=None, start_date=START) as dag:
        create = IterableCreateListOperator(
            task_id="create", name="Onboarding {{ ds }}", description="new users"
        )
        reuse = IterableCreateListOperator(task_id="reuse", name="Newsletter", reuse_existing=True)
        subscribe = IterableAddSubscribersToListOperator(
            task_id="subscribe",
            list_id=create.output,
            subscribers=["a@example.com", {"email": "b@example.com", "dataFields": {"src": "airflow"}}],
            batch_size=1,
        )
        from_file = IterableAddSubscribersToListOperator(
            task_id="from_file",
            list_id="{{ ti.xcom_pull(task_ids='reuse') }}",
            subscribers_file=str(members),
            update_existing_users_only=False,
        )
        unsubscribe = IterableRemoveSubscribersFromListOperator(
            task_id="unsubscribe",
            list_id=create.output,
            subscribers=["a@example.com"],
            campaign_id="1001",
            channel_unsubscribe=False,
        )
        listed = IterableListProjectListsOperator(task_id="listed", list_type="standard")
        [subscribe, reuse] >> from_file >> unsubscribe >> listed

    run = dag_runner(dag)

    assert set(states(run).values()) == {"success"}
    (created,) = simulator.requests_for("POST /api/lists")
    assert created.json["name"].startswith("Onboarding 20")
    assert created.json["description"] == "new users"
    new_id = xcom(run, "create")
    assert isinstance(new_id, int) and new_id != existing
    assert xcom(run, "reuse") == existing  # found by name: no second "Newsletter"

    *to_new_list, from_file_call = simulator.requests_for("POST /api/lists/subscribe")
    # batch_size=1: one request per subscriber (in flight together, so in either order).
    assert sorted((call.json for call in to_new_list), key=json.dumps) == [
        {"listId": new_id, "subscribers": [{"email": "a@example.com"}]},
        {"listId": new_id, "subscribers": [{"email": "b@example.com", "dataFields": {"src": "airflow"}}]},
    ]
    assert from_file_call.json == {
        "listId": existing,
        "subscribers": [
            {"email": "f1@example.com", "dataFields": {"firstName": "Fay"}},
            {"email": "f2@example.com"},
        ],
        "updateExistingUsersOnly": False,
    }
    assert xcom(run, "subscribe")["batches"] == 2
    assert xcom(run, "subscribe")["successCount"] == 2

    (unsub,) = simulator.requests_for("POST /api/lists/unsubscribe")
    assert unsub.json == {
        "listId": new_id,
        "subscribers": [{"email": "a@example.com"}],
        "campaignId": 1001,
        "channelUnsubscribe": False,
    }
    assert simulator.list_members(new_id) == {"b@example.com"}
    assert simulator.list_members(existing) == {"f1@example.com", "f2@example.com"}

    names = {item["name"] for item in xcom(run, "listed")}
    assert "Newsletter" in names and created.json["name"] in names
    assert all(item["listType"] == "Standard" for item in xcom(run, "listed"))


def test_non_numeric_list_id_fails_before_any_request(
    dag_runner: Any, simulator: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    with DAG("iterable_lists_bad_id", schedule=None, start_date=START, default_args={"retries": 2}) as dag:
        IterableAddSubscribersToListOperator(
            task_id="subscribe", list_id="{{ 'forty-two' }}", subscribers=["a@example.com"]
        )
        IterableRemoveSubscribersFromListOperator(task_id="unsubscribe", list_id="12", subscribers=[42])

    run = dag_runner(dag)

    assert states(run) == {"subscribe": "failed", "unsubscribe": "failed"}
    assert simulator.requests == []
    text = "".join(capfd.readouterr())
    assert "list_id must be a whole number such as 42" in text
    assert "'forty-two'" in text
    assert "subscribers[0]: a subscriber must be a JSON object or an e-mail address string" in text


def test_create_list_with_an_unreadable_answer_fails_for_good(simulator: Any) -> None:
    # Iterable accepted the call, so the list most likely exists: a task retry would make a second.
    simulator.add_fault("POST /api/lists", status=200, body="<html>OK</html>")
    op = IterableCreateListOperator(task_id="create", name="VIPs")
    with pytest.raises(AirflowFailException, match="Outcome unknown while creating the list"):
        op.execute({})  # type: ignore[arg-type]
    assert len(simulator.requests_for("POST /api/lists")) == 1
