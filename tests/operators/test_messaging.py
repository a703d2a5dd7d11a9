"""Messaging operators through Airflow: SMS, e-mail, channels, journeys, and retry safety."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_iterable.operators import (
    IterableListChannelsOperator,
    IterableSendEmailOperator,
    IterableSendSmsOperator,
    IterableTriggerJourneyOperator,
)
from tests.operators.conftest import START, states, xcom


def test_sends_channels_and_journeys(dag_runner: Any, simulator: Any) -> None:
    simulator.add_user(email="ada@example.com", user_id="u-ada")
    list_id = simulator.add_list("VIP")
    with DAG("iterable_messaging_roundtrip", schedule=None, start_date=START) as dag:
        IterableSendSmsOperator(
            task_id="sms",
            campaign_id="{{ 2000 + 1 }}",
            recipient_email="ada@example.com",
            data_fields={"code": "{{ run_id[:6] }}"},
            send_at=dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            allow_repeat_marketing_sends=False,
        )
        IterableSendEmailOperator(
            task_id="email",
            campaign_id=1001,
            recipient_user_id="u-ada",
            send_at="2026-12-01T08:00:00",
            metadata={"dagRun": "{{ run_id }}"},
        )
        IterableListChannelsOperator(task_id="channels")
        IterableTriggerJourneyOperator(
            task_id="journey_user", workflow_id="3001", email="ada@example.com", data_fields={"why": "test"}
        )
        IterableTriggerJourneyOperator(task_id="journey_list", workflow_id=3001, list_id=str(list_id))

    run = dag_runner(dag)

    assert set(states(run).values()) == {"success"}
    (sms,) = simulator.requests_for("POST /api/sms/target")
    assert sms.json == {
        "campaignId": 2001,
        "recipientEmail": "ada@example.com",
        "dataFields": {"code": run.run_id[:6]},
        "sendAt": "2026-12-01 08:00:00",  # UTC
        "allowRepeatMarketingSends": False,
    }
    (email,) = simulator.requests_for("POST /api/email/target")
    assert email.json == {
        "campaignId": 1001,
        "recipientUserId": "u-ada",
        "sendAt": "2026-12-01 08:00:00",
        "metadata": {"dagRun": run.run_id},
    }
    assert sorted(s["campaignId"] for s in simulator.sends) == [1001, 2001]
    assert xcom(run, "sms")["code"] == "Success"
    channels = xcom(run, "channels")
    assert channels and {"id", "name", "channelType", "messageMedium"} <= set(channels[0])
    assert len(simulator.requests_for("GET /api/channels")) == 1
    journeys = sorted(
        (r.json for r in simulator.requests_for("POST /api/workflows/triggerWorkflow")), key=json.dumps
    )
    assert journeys == sorted(
        [
            {"workflowId": 3001, "email": "ada@example.com", "dataFields": {"why": "test"}},
            {"workflowId": 3001, "listId": list_id},
        ],
        key=json.dumps,
    )


def test_sms_with_unknown_outcome_fails_for_good_after_one_request(
    dag_runner: Any, simulator: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # The answer comes after the client's read timeout: Iterable may have sent the SMS.
    monkeypatch.setenv("AIRFLOW_CONN_ITERABLE_DEFAULT", simulator.connection_json(timeout=0.5))
    simulator.add_fault("POST /api/sms/target", delay=2.0)
    with DAG(
        "iterable_messaging_retry_safety",
        schedule=None,
        start_date=START,
        default_args={"retries": 3, "retry_delay": dt.timedelta(seconds=0)},
    ) as dag:
        IterableSendSmsOperator(task_id="sms", campaign_id=2001, recipient_email="ada@example.com")

    run = dag_runner(dag)

    assert states(run) == {"sms": "failed"}  # not up_for_retry: a retry could send a second SMS
    assert len(simulator.requests_for("POST /api/sms/target")) == 1
    assert "Outcome unknown while sending the SMS" in "".join(capfd.readouterr())


def test_messaging_argument_errors(
    dag_runner: Any, simulator: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    with DAG("iterable_messaging_bad_arguments", schedule=None, start_date=START) as dag:
        IterableSendSmsOperator(task_id="no_recipient", campaign_id=2001)
        IterableSendEmailOperator(
            task_id="bad_send_at", campaign_id=1001, recipient_email="a@example.com", send_at="next tuesday"
        )
        IterableTriggerJourneyOperator(
            task_id="user_and_list", workflow_id=3001, email="a@example.com", list_id=5
        )
        IterableTriggerJourneyOperator(task_id="bad_workflow", workflow_id="journey", email="a@example.com")

    run = dag_runner(dag)

    assert set(states(run).values()) == {"failed"}
    assert simulator.requests == []
    text = "".join(capfd.readouterr())
    assert "Set one of recipient_email or recipient_user_id" in text
    assert "send_at must be a datetime or an ISO-8601 string" in text
    assert "Set only one of email, user_id or list_id" in text
    assert "workflow_id must be a whole number" in text
