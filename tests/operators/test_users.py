"""User operators, run by Airflow against the simulator: the exact requests and the XCom results."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_iterable.operators import (
    IterableDeleteUserOperator,
    IterableGetUserByEmailOperator,
    IterableGetUserByIdOperator,
    IterableUpdateUserSubscriptionsOperator,
    IterableUpsertUserOperator,
)
from tests.operators.conftest import START, states, xcom


def test_user_operators_send_exact_requests_and_push_results(dag_runner: Any, simulator: Any) -> None:
    simulator.add_user(email="grace@example.com", user_id="u-grace", data_fields={"plan": "free"})
    with DAG(
        "iterable_users_roundtrip",
        schedule=None,
        start_date=START,
        params={"email": "ada@example.com"},
    ) as dag:
        upsert = IterableUpsertUserOperator(
            task_id="upsert",
            email="{{ params.email }}",
            data_fields={"plan": "pro", "firstName": "Ada", "signup": "{{ ds }}"},
            merge_nested_objects=True,
            create_new_fields=True,
        )
        by_email = IterableGetUserByEmailOperator(
            task_id="by_email",
            email="{{ params.email }}",
            xcom_fields=["email", "dataFields.plan", "dataFields.absent"],
        )
        by_id = IterableGetUserByIdOperator(task_id="by_id", user_id="u-grace")
        missing = IterableGetUserByEmailOperator(
            task_id="missing", email="nobody@example.com", fail_if_missing=False
        )
        subscriptions = IterableUpdateUserSubscriptionsOperator(
            task_id="subscriptions",
            user_id="u-grace",
            unsubscribed_channel_ids="{{ [1, 2] }}",
        )
        delete = IterableDeleteUserOperator(task_id="delete", email="grace@example.com")
        upsert >> by_email >> by_id >> missing >> subscriptions >> delete

    run = dag_runner(dag)

    assert set(states(run).values()) == {"success"}
    (update,) = simulator.requests_for("POST /api/users/update")
    ds = run.logical_date.strftime("%Y-%m-%d") if run.logical_date else run.run_after.strftime("%Y-%m-%d")
    assert update.json == {
        "email": "ada@example.com",
        "dataFields": {"plan": "pro", "firstName": "Ada", "signup": ds},
        "mergeNestedObjects": True,
        "createNewFields": True,
    }
    assert xcom(run, "upsert")["code"] == "Success"

    (lookup,) = simulator.requests_for("GET /api/users/getByEmail")[:1]
    assert lookup.query == {"email": ["ada@example.com"]}
    # xcom_fields keeps only what was asked for, nested as in the profile; absent paths are left out.
    assert xcom(run, "by_email") == {"email": "ada@example.com", "dataFields": {"plan": "pro"}}

    (by_id_call,) = simulator.requests_for("GET /api/users/byUserId")
    assert by_id_call.query == {"userId": ["u-grace"]}
    grace = xcom(run, "by_id")
    assert grace["email"] == "grace@example.com"
    assert grace["dataFields"]["plan"] == "free"

    # Airflow pushes nothing for a None result; downstream tasks pull None.
    assert xcom(run, "missing", required=False) is None
    assert len(simulator.requests_for("GET /api/users/getByEmail")) == 2

    (subs,) = simulator.requests_for("POST /api/users/updateSubscriptions")
    # Only the field that was set: Iterable replaces every field it receives.
    assert subs.json == {"userId": "u-grace", "unsubscribedChannelIds": [1, 2]}

    (deleted,) = simulator.requests_for("DELETE /api/users/{email}")
    assert unquote(deleted.path) == "/api/users/grace@example.com"
    assert xcom(run, "delete")["code"] == "Success"
    assert simulator.get_user(email="grace@example.com") is None


def test_argument_errors_fail_without_retry_and_without_a_request(
    dag_runner: Any, simulator: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    with DAG(
        "iterable_users_bad_arguments",
        schedule=None,
        start_date=START,
        default_args={"retries": 3},
    ) as dag:
        IterableUpsertUserOperator(task_id="neither", data_fields={"a": 1})
        IterableDeleteUserOperator(task_id="both", email="a@example.com", user_id="a")
        IterableUpsertUserOperator(task_id="empty_render", email="{{ params.get('nope', '') }}")
        IterableUpdateUserSubscriptionsOperator(task_id="nothing_to_update", email="a@example.com")
        IterableUpdateUserSubscriptionsOperator(
            task_id="bad_list_ids", email="a@example.com", email_list_ids="{{ 'five' }}"
        )

    run = dag_runner(dag)

    # "failed", not "up_for_retry": AirflowFailException tells Airflow a retry cannot help.
    assert states(run) == {
        "neither": "failed",
        "both": "failed",
        "empty_render": "failed",
        "nothing_to_update": "failed",
        "bad_list_ids": "failed",
    }
    assert simulator.requests == []
    logs = capfd.readouterr()
    text = logs.out + logs.err
    assert "Set one of email or user_id: none was given" in text
    assert "Set only one of email or user_id, not email and user_id" in text
    assert "Nothing to update" in text
    assert "email_list_ids item must be a whole number" in text


def test_missing_user_fails_by_default(simulator: Any) -> None:
    op = IterableGetUserByIdOperator(task_id="get", user_id="nobody")
    from airflow.sdk.exceptions import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException, match="no user with this user_id"):
        op.execute({})  # type: ignore[arg-type]
    assert len(simulator.requests_for("GET /api/users/byUserId")) == 1


def test_api_4xx_becomes_a_final_failure(simulator: Any) -> None:
    simulator.add_fault("POST /api/users/update", status=400, body={"msg": "bad", "code": "BadParams"})
    op = IterableUpsertUserOperator(task_id="upsert", email="ada@example.com")
    with pytest.raises(AirflowFailException, match="Iterable refused the request"):
        op.execute({})  # type: ignore[arg-type]
    assert len(simulator.requests_for("POST /api/users/update")) == 1


def test_connection_without_api_key_fails_for_good(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_ITERABLE_DEFAULT", json.dumps({"conn_type": "iterable", "host": simulator.url})
    )
    op = IterableUpsertUserOperator(task_id="upsert", email="ada@example.com")
    with pytest.raises(
        AirflowFailException, match=r"Connection 'iterable_default' cannot be used.*no API key"
    ):
        op.execute({})  # type: ignore[arg-type]
    assert simulator.requests == []


def test_unreadable_success_answer_becomes_a_final_failure(simulator: Any) -> None:
    # A 200 that is not JSON will not turn into JSON on a task retry.
    simulator.add_fault("POST /api/users/update", status=200, body="<html>OK</html>")
    op = IterableUpsertUserOperator(task_id="upsert", email="ada@example.com")
    with pytest.raises(AirflowFailException, match="not JSON"):
        op.execute({})  # type: ignore[arg-type]
    assert len(simulator.requests_for("POST /api/users/update")) == 1


@pytest.mark.parametrize(
    ("operator", "message"),
    [
        (
            lambda: IterableUpsertUserOperator(task_id="t", data_fields={"a": 1}),
            "Set one of email or user_id",
        ),
        (
            lambda: IterableUpsertUserOperator(task_id="t", email="a@example.com", data_fields="[1]"),
            "data_fields must be a JSON object",
        ),
        (
            lambda: IterableUpdateUserSubscriptionsOperator(
                task_id="t", email="a@example.com", email_list_ids="[x"
            ),
            "email_list_ids must be a list",
        ),
        (
            lambda: IterableGetUserByEmailOperator(task_id="t", email="a@example.com", xcom_fields=[3]),
            "xcom_fields must be a list of dotted paths",
        ),
    ],
)
def test_argument_errors_are_the_providers_config_errors(simulator: Any, operator: Any, message: str) -> None:
    from airflow_provider_iterable.exceptions import IterableConfigError

    with pytest.raises(IterableConfigError, match=message) as caught:
        operator().execute({})
    # Still final for Airflow: a task retry cannot fix an argument.
    assert isinstance(caught.value, AirflowFailException)
    assert simulator.requests == []
