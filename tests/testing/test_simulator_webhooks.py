"""System webhooks the simulator fires at a receiver when it "sends"."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_iterable.testing import IterableSimulator
from tests.testing._client import ApiClient

CREATED_AT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \+00:00$")


class Receiver:
    """A tiny webhook receiver: records each POST; answers ``fail_first`` of them with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.received: list[tuple[dict[str, str], Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.received.append((dict(self.headers), json.loads(body)))
                    failing = len(receiver.received) <= receiver.fail_first
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/iterable_default/system"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def test_email_target_fires_email_send_with_metadata(receiver: Receiver) -> None:
    headers = {"Authorization": "Bearer s3cret"}
    with IterableSimulator(webhook_url=receiver.url, webhook_headers=headers) as sim, ApiClient(sim) as api:
        answer = api.post(
            "/api/email/target",
            json={
                "campaignId": 1001,
                "recipientEmail": "ada@example.com",
                "dataFields": {"firstName": "Ada"},
                "metadata": {"orderId": "o-42"},
            },
        )
        assert answer.status_code == 200
        assert sim.wait_for_webhooks(timeout=10)
        sent_headers, body = receiver.received[0]
        assert sent_headers["Authorization"] == "Bearer s3cret"
        assert sent_headers["Content-Type"] == "application/json"
        assert body["eventName"] == "emailSend"
        assert body["email"] == "ada@example.com"
        fields = body["dataFields"]
        assert fields["campaignId"] == 1001
        assert fields["templateId"] == sim.campaigns[1001]["templateId"]
        assert fields["messageId"] == answer.json()["params"]["messageId"]
        assert CREATED_AT.match(fields["createdAt"])
        assert fields["workflowId"] is None
        assert fields["channelId"] == 1
        assert fields["orderId"] == "o-42"
        assert fields["transactionalData"] == {"firstName": "Ada"}
        assert sim.webhook_deliveries == [(200, body)]


def test_sms_target_fires_sms_send_with_user_id(receiver: Receiver) -> None:
    with IterableSimulator(webhook_url=receiver.url) as sim, ApiClient(sim) as api:
        sim.add_user(email="sms@example.com", user_id="u-7", data_fields={"phoneNumber": "+15555550101"})
        assert (
            api.post("/api/sms/target", json={"campaignId": 2001, "recipientUserId": "u-7"}).status_code
            == 200
        )
        assert sim.wait_for_webhooks(timeout=10)
    (_, body) = receiver.received[0]
    assert body["eventName"] == "smsSend"
    assert body["email"] == "sms@example.com"
    assert body["userId"] == "u-7"
    assert body["dataFields"]["campaignId"] == 2001
    assert body["dataFields"]["toPhoneNumber"] == "+15555550101"


def test_failed_sends_fire_nothing(receiver: Receiver) -> None:
    with IterableSimulator(webhook_url=receiver.url) as sim, ApiClient(sim) as api:
        assert (
            api.post(
                "/api/sms/target", json={"campaignId": 1001, "recipientEmail": "x@example.com"}
            ).status_code
            == 400
        )
        sim.add_fault("POST /api/email/target", status=500)
        api.post("/api/email/target", json={"campaignId": 1001, "recipientEmail": "x@example.com"})
        assert sim.wait_for_webhooks(timeout=10)
    assert receiver.received == []


def test_delivery_is_retried_until_the_receiver_accepts() -> None:
    with Receiver(fail_first=2) as flaky, IterableSimulator(webhook_url=flaky.url) as sim:
        body = sim.fire_webhook("emailOpen", email="o@example.com", data_fields={"campaignId": 1001})
        assert sim.wait_for_webhooks(timeout=10)
        assert sim.webhook_deliveries == [(500, body), (500, body), (200, body)]
        assert len(flaky.received) == 3


def test_unreachable_receiver_is_recorded_as_status_0() -> None:
    with Receiver() as gone:
        url = gone.url
    with IterableSimulator(webhook_url=url) as sim:
        sim.fire_webhook("emailClick", email="c@example.com")
        assert sim.wait_for_webhooks(timeout=15)
        deliveries = sim.webhook_deliveries
    assert len(deliveries) >= 2
    assert {status for status, _ in deliveries} == {0}


def test_fire_webhook_shapes_any_event(receiver: Receiver) -> None:
    with IterableSimulator(webhook_url=receiver.url) as sim:
        body = sim.fire_webhook(
            "emailUnSubscribe", email="u@example.com", user_id="u-1", data_fields={"campaignId": 5}
        )
        assert sim.wait_for_webhooks(timeout=10)
    assert receiver.received[0][1] == body
    assert body["eventName"] == "emailUnSubscribe"
    assert body["userId"] == "u-1"
    assert body["dataFields"]["campaignId"] == 5
    assert body["dataFields"]["email"] == "u@example.com"
    assert CREATED_AT.match(body["dataFields"]["createdAt"])


def test_webhook_url_can_be_set_after_start(receiver: Receiver) -> None:
    with IterableSimulator() as sim, ApiClient(sim) as api:
        with pytest.raises(RuntimeError, match="webhook_url"):
            sim.fire_webhook("emailOpen", email="a@example.com")
        api.post("/api/email/target", json={"campaignId": 1001, "recipientEmail": "early@example.com"})
        sim.webhook_url = receiver.url
        api.post("/api/email/target", json={"campaignId": 1001, "recipientEmail": "late@example.com"})
        assert sim.wait_for_webhooks(timeout=10)
    assert [body["email"] for _, body in receiver.received] == ["late@example.com"]


def test_journey_with_call_webhook_tile_posts_each_entrant(receiver: Receiver) -> None:
    journey_url = receiver.url.replace("/system", "/journeys/3100")
    with IterableSimulator() as sim, ApiClient(sim) as api:
        sim.add_workflow(3100, name="Onboarding", webhook_url=journey_url, webhook_headers={"X-Token": "t"})
        list_id = sim.add_list("Entrants")
        api.post(
            "/api/lists/subscribe",
            json={"listId": list_id, "subscribers": [{"email": "j1@example.com"}, {"userId": "j2"}]},
        )
        one = api.post(
            "/api/workflows/triggerWorkflow",
            json={"workflowId": 3100, "email": "solo@example.com", "dataFields": {"step": 1}},
        )
        many = api.post("/api/workflows/triggerWorkflow", json={"workflowId": 3100, "listId": list_id})
        plain = api.post(
            "/api/workflows/triggerWorkflow", json={"workflowId": 3001, "email": "x@example.com"}
        )
        assert (one.status_code, many.status_code, plain.status_code) == (200, 200, 200)
        assert sim.wait_for_webhooks(timeout=10)
    assert [headers["X-Token"] for headers, _ in receiver.received] == ["t", "t", "t"]
    bodies = [body for _, body in receiver.received]
    assert bodies[0] == {
        "email": "solo@example.com",
        "workflowId": 3100,
        "workflowName": "Onboarding",
        "dataFields": {"step": 1},
    }
    assert bodies[1]["email"] == "j1@example.com"
    assert bodies[2]["userId"] == "j2"
    # A user known only by userId carries Iterable's placeholder address.
    assert bodies[2]["email"].endswith("@placeholder.email")


def test_each_failed_attempt_is_a_warning_without_the_user(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="airflow_provider_iterable.testing")
    with Receiver(fail_first=2) as flaky, IterableSimulator(webhook_url=flaky.url + "?k=v") as sim:
        sim.fire_webhook("emailOpen", email="private@example.com")
        assert sim.wait_for_webhooks(timeout=10)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"webhook emailOpen to {flaky.url} failed: HTTP 500 (attempt 1 of 4, retrying)",
        f"webhook emailOpen to {flaky.url} failed: HTTP 500 (attempt 2 of 4, retrying)",
    ]


@pytest.mark.parametrize(
    ("headers", "extra"),
    [
        ({"Authorization": "Bearer s3cret"}, {"webhook_secrets": ["s3cret"]}),
        ({"Authorization": "basic  s3cret "}, {"webhook_secrets": ["s3cret"]}),
        ({"Authorization": "s3cret"}, {"webhook_secrets": ["s3cret"]}),
        ({"Authorization": "Token s3cret"}, {"webhook_secrets": ["Token s3cret"]}),
        ({"X-A": "1", "AUTHORIZATION": "OAuth2 s3"}, {"webhook_secrets": ["s3"]}),
        ({"X-Secret": "s3", "X-B": "2"}, {"webhook_secrets": ["s3"], "webhook_secret_header": "X-Secret"}),
        ({}, {"webhook_auth": "none"}),
    ],
)
def test_webhook_connection_extra_matches_what_is_sent(
    headers: dict[str, str], extra: dict[str, Any]
) -> None:
    url = "http://127.0.0.1:1/webhooks/iterable_default/system"
    sim = IterableSimulator(webhook_url=url, webhook_headers=headers)
    assert sim.webhook_connection_extra() == extra


def test_no_webhook_url_needs_no_connection_extra() -> None:
    assert IterableSimulator(webhook_headers={"Authorization": "Bearer s"}).webhook_connection_extra() == {}
