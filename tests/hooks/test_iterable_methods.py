"""Every public hook method sends exactly the request Iterable documents, and reads its answer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_iterable import __version__
from airflow_provider_iterable.exceptions import IterableApiError, IterableConfigError
from airflow_provider_iterable.testing import DEFAULT_API_KEY, IterableSimulator, RecordedRequest

from .conftest import HookFactory


def only_request(sim: IterableSimulator) -> RecordedRequest:
    """Return the single request the simulator received since the last clear."""
    requests = sim.requests
    assert len(requests) == 1, [r.endpoint for r in requests]
    return requests[0]


def assert_headers(request: RecordedRequest, *, body: bool) -> None:
    assert request.headers["api-key"] == DEFAULT_API_KEY
    assert request.headers["user-agent"].startswith(f"airflow-provider-iterable/{__version__} ")
    if body:
        assert request.headers["content-type"] == "application/json"
    else:
        assert "content-type" not in request.headers
        assert request.body == b""


def test_upsert_user_sends_camel_case_body_without_none_fields(
    sim: IterableSimulator, make_hook: HookFactory
):
    hook = make_hook()
    answer = hook.upsert_user(
        email="ada@example.com",
        data_fields={"plan": "pro", "seats": 3},
        merge_nested_objects=True,
        create_new_fields=True,
    )
    request = only_request(sim)
    assert (request.method, request.path, request.query) == ("POST", "/api/users/update", {})
    assert request.json == {
        "email": "ada@example.com",
        "dataFields": {"plan": "pro", "seats": 3},
        "mergeNestedObjects": True,
        "createNewFields": True,
    }
    assert_headers(request, body=True)
    assert answer["code"] == "Success"
    assert sim.get_user(email="ada@example.com")["dataFields"]["plan"] == "pro"


def test_upsert_user_by_user_id_with_prefer_user_id(sim: IterableSimulator, make_hook: HookFactory):
    make_hook().upsert_user(user_id="u-1", prefer_user_id=True, data_fields={"a": 1})
    assert only_request(sim).json == {"userId": "u-1", "preferUserId": True, "dataFields": {"a": 1}}
    assert sim.get_user(user_id="u-1") is not None


def test_upsert_user_without_identity_fails_before_any_request(
    sim: IterableSimulator, make_hook: HookFactory
):
    with pytest.raises(IterableConfigError, match="email or user_id"):
        make_hook().upsert_user(data_fields={"a": 1})
    assert sim.requests == []


def test_bulk_update_users_passes_users_through(sim: IterableSimulator, make_hook: HookFactory):
    users = [
        {"email": "a@example.com", "dataFields": {"n": 1}},
        {"userId": "u-2", "preferUserId": True, "dataFields": {"n": 2}},
        {"email": "not-an-email", "dataFields": {"n": 3}},
    ]
    answer = make_hook().bulk_update_users(users, create_new_fields=True)
    request = only_request(sim)
    assert (request.method, request.path) == ("POST", "/api/users/bulkUpdate")
    assert request.json == {"users": users, "createNewFields": True}
    assert_headers(request, body=True)
    # Bulk answers are 200 even when records fail: the hook hands back the raw counts.
    assert answer["successCount"] == 2
    assert answer["failCount"] == 1
    assert answer["failedUpdates"]["invalidEmails"] == ["not-an-email"]


def test_get_user_by_email_uses_query_form_and_encodes_plus(sim: IterableSimulator, make_hook: HookFactory):
    sim.add_user(email="ada+news@example.com", data_fields={"plan": "pro"})
    user = make_hook().get_user_by_email("ada+news@example.com")
    request = only_request(sim)
    assert (request.method, request.path) == ("GET", "/api/users/getByEmail")
    # parse_qs decodes %2B back to "+": a "+" sent raw would have arrived as a space.
    assert request.query == {"email": ["ada+news@example.com"]}
    assert_headers(request, body=False)
    assert user is not None
    assert user["email"] == "ada+news@example.com"
    assert user["dataFields"]["plan"] == "pro"


def test_get_user_by_email_unknown_user_is_none(sim: IterableSimulator, make_hook: HookFactory):
    assert make_hook().get_user_by_email("nobody@example.com") is None
    assert only_request(sim).endpoint == "GET /api/users/getByEmail"


def test_get_user_by_id(sim: IterableSimulator, make_hook: HookFactory):
    sim.add_user(user_id="user/42", data_fields={"x": 1})
    hook = make_hook()
    user = hook.get_user_by_id("user/42")
    request = only_request(sim)
    assert (request.method, request.path, request.query) == (
        "GET",
        "/api/users/byUserId",
        {"userId": ["user/42"]},
    )
    assert_headers(request, body=False)
    assert user is not None
    assert user["userId"] == "user/42"
    assert hook.get_user_by_id("missing") is None


def test_update_subscriptions_sends_only_given_fields(sim: IterableSimulator, make_hook: HookFactory):
    sim.add_user(email="ada@example.com")
    list_id = sim.add_list("Newsletter")
    answer = make_hook().update_subscriptions(
        email="ada@example.com",
        email_list_ids=[list_id],
        unsubscribed_message_type_ids=(11,),
        campaign_id=1001,
    )
    request = only_request(sim)
    assert (request.method, request.path) == ("POST", "/api/users/updateSubscriptions")
    # Iterable replaces every field it is given: the ones left None must not be sent at all.
    assert request.json == {
        "email": "ada@example.com",
        "emailListIds": [list_id],
        "unsubscribedMessageTypeIds": [11],
        "campaignId": 1001,
    }
    assert_headers(request, body=True)
    assert answer["code"] == "Success"
    assert sim.list_members(list_id) == {"ada@example.com"}


def test_update_subscriptions_all_fields(sim: IterableSimulator, make_hook: HookFactory):
    sim.add_user(user_id="u-7")
    make_hook().update_subscriptions(
        user_id="u-7",
        email_list_ids=[],
        unsubscribed_channel_ids=[1],
        unsubscribed_message_type_ids=[12],
        subscribed_message_type_ids=[13],
        campaign_id=1001,
        template_id=77,
        validate_channel_alignment=False,
    )
    assert only_request(sim).json == {
        "userId": "u-7",
        "emailListIds": [],
        "unsubscribedChannelIds": [1],
        "unsubscribedMessageTypeIds": [12],
        "subscribedMessageTypeIds": [13],
        "campaignId": 1001,
        "templateId": 77,
        "validateChannelAlignment": False,
    }


def test_delete_user_by_email_percent_encodes_the_path(sim: IterableSimulator, make_hook: HookFactory):
    sim.add_user(email="ada+test@example.com")
    answer = make_hook().delete_user(email="ada+test@example.com")
    request = only_request(sim)
    assert request.method == "DELETE"
    assert request.path == "/api/users/ada%2Btest@example.com"
    assert request.endpoint == "DELETE /api/users/{email}"
    assert_headers(request, body=False)
    assert answer["code"] == "Success"
    assert sim.get_user(email="ada+test@example.com") is None


def test_delete_user_by_user_id(sim: IterableSimulator, make_hook: HookFactory):
    sim.add_user(user_id="u/9")
    make_hook().delete_user(user_id="u/9")
    request = only_request(sim)
    assert (request.method, request.path) == ("DELETE", "/api/users/byUserId/u%2F9")
    assert request.endpoint == "DELETE /api/users/byUserId/{userId}"
    assert sim.get_user(user_id="u/9") is None


@pytest.mark.parametrize(
    "kwargs", [{}, {"email": "a@example.com", "user_id": "u-1"}, {"email": "  "}, {"user_id": ""}]
)
def test_delete_user_needs_exactly_one_identity(sim: IterableSimulator, make_hook: HookFactory, kwargs):
    with pytest.raises(IterableConfigError, match="exactly one of email or user_id"):
        make_hook().delete_user(**kwargs)
    assert sim.requests == []


def test_create_list_returns_the_new_id(sim: IterableSimulator, make_hook: HookFactory):
    list_id = make_hook().create_list("VIPs", description="Top customers")
    request = only_request(sim)
    assert (request.method, request.path) == ("POST", "/api/lists")
    assert request.json == {"name": "VIPs", "description": "Top customers"}
    assert_headers(request, body=True)
    assert isinstance(list_id, int)
    assert sim.lists[list_id]["name"] == "VIPs"


def test_create_list_without_description_omits_it(sim: IterableSimulator, make_hook: HookFactory):
    make_hook().create_list("Plain")
    assert only_request(sim).json == {"name": "Plain"}


def test_get_lists(sim: IterableSimulator, make_hook: HookFactory):
    first = sim.add_list("One")
    second = sim.add_list("Two", description="second")
    lists = make_hook().get_lists()
    request = only_request(sim)
    assert (request.method, request.path, request.query) == ("GET", "/api/lists", {})
    assert_headers(request, body=False)
    assert {item["id"]: item["name"] for item in lists} == {first: "One", second: "Two"}


def test_subscribe_and_unsubscribe(sim: IterableSimulator, make_hook: HookFactory):
    list_id = sim.add_list("Members")
    hook = make_hook()
    subscribers = [{"email": "a@example.com", "dataFields": {"src": "airflow"}}, {"email": "b@example.com"}]
    answer = hook.subscribe_to_list(list_id, subscribers, update_existing_users_only=False)
    request = only_request(sim)
    assert (request.method, request.path) == ("POST", "/api/lists/subscribe")
    assert request.json == {"listId": list_id, "subscribers": subscribers, "updateExistingUsersOnly": False}
    assert_headers(request, body=True)
    assert answer["successCount"] == 2
    assert sim.list_members(list_id) == {"a@example.com", "b@example.com"}

    sim.clear_requests()
    answer = hook.unsubscribe_from_list(
        list_id, [{"email": "a@example.com"}], campaign_id=1001, channel_unsubscribe=False
    )
    request = only_request(sim)
    assert (request.method, request.path) == ("POST", "/api/lists/unsubscribe")
    assert request.json == {
        "listId": list_id,
        "subscribers": [{"email": "a@example.com"}],
        "campaignId": 1001,
        "channelUnsubscribe": False,
    }
    assert answer["successCount"] == 1
    assert sim.list_members(list_id) == {"b@example.com"}


def test_subscribe_to_unknown_list_400_with_code_success_is_an_error(
    sim: IterableSimulator, make_hook: HookFactory
):
    with pytest.raises(IterableApiError) as caught:
        make_hook().subscribe_to_list(999_999, [{"email": "a@example.com"}])
    assert caught.value.status == 400
    assert caught.value.code == "Success"
    assert caught.value.endpoint == "POST /api/lists/subscribe"
    assert "999999" in str(caught.value)
    assert len(sim.requests) == 1


def test_track_event_converts_naive_datetime_as_utc(sim: IterableSimulator, make_hook: HookFactory):
    answer = make_hook().track_event(
        event_name="purchase",
        email="ada@example.com",
        event_id="order-17",
        created_at=datetime(2026, 1, 2, 3, 4, 5),
        data_fields={"total": 12.5},
        campaign_id=1001,
        template_id=5,
        create_new_fields=True,
    )
    request = only_request(sim)
    assert (request.method, request.path) == ("POST", "/api/events/track")
    assert request.json == {
        "eventName": "purchase",
        "email": "ada@example.com",
        "id": "order-17",
        "createdAt": int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()),
        "dataFields": {"total": 12.5},
        "campaignId": 1001,
        "templateId": 5,
        "createNewFields": True,
    }
    assert_headers(request, body=True)
    assert answer["params"]["id"] == "order-17"
    assert [event["id"] for event in sim.events] == ["order-17"]


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        (datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))), 1767323045),
        (1767323045.9, 1767323045),
        (1767323045, 1767323045),
    ],
)
def test_track_event_created_at_forms(sim: IterableSimulator, make_hook: HookFactory, created_at, expected):
    make_hook().track_event(event_name="e", user_id="u-1", created_at=created_at)
    body = only_request(sim).json
    assert body == {"eventName": "e", "userId": "u-1", "createdAt": expected}
    assert isinstance(body["createdAt"], int)


def test_track_events_bulk(sim: IterableSimulator, make_hook: HookFactory):
    events = [
        {"eventName": "open", "email": "a@example.com", "id": "e-1"},
        {"eventName": "open", "userId": "u-2", "id": "e-2", "dataFields": {"k": "v"}},
    ]
    answer = make_hook().track_events(events)
    request = only_request(sim)
    assert (request.method, request.path) == ("POST", "/api/events/trackBulk")
    assert request.json == {"events": events}
    assert_headers(request, body=True)
    assert answer["successCount"] == 2
    assert "disallowedEventNames" in answer


def test_send_sms_formats_send_at_in_utc(sim: IterableSimulator, make_hook: HookFactory):
    answer = make_hook().send_sms(
        campaign_id=2001,
        recipient_email="ada@example.com",
        data_fields={"code": "1234"},
        send_at=datetime(2030, 5, 6, 9, 30, tzinfo=timezone(timedelta(hours=-4))),
        allow_repeat_marketing_sends=False,
    )
    request = only_request(sim)
    assert (request.method, request.path) == ("POST", "/api/sms/target")
    assert request.json == {
        "campaignId": 2001,
        "recipientEmail": "ada@example.com",
        "dataFields": {"code": "1234"},
        "sendAt": "2030-05-06 13:30:00",
        "allowRepeatMarketingSends": False,
    }
    assert_headers(request, body=True)
    assert answer["code"] == "Success"
    assert [send["medium"] for send in sim.sends] == ["SMS"]


@pytest.mark.parametrize(
    ("send_at", "expected"),
    [
        (datetime(2030, 5, 6, 9, 30, 15), "2030-05-06 09:30:15"),
        ("2030-05-06 09:30:15", "2030-05-06 09:30:15"),
        ("2030-05-06T11:30:15+02:00", "2030-05-06 09:30:15"),
        ("2030-05-06 09:30:15 +00:00", "2030-05-06 09:30:15"),
        ("2030-05-06T09:30:15Z", "2030-05-06 09:30:15"),
    ],
)
def test_send_email_send_at_forms(sim: IterableSimulator, make_hook: HookFactory, send_at, expected):
    sim.add_user(user_id="u-1")
    make_hook().send_email(campaign_id=1001, recipient_user_id="u-1", send_at=send_at)
    assert only_request(sim).json == {"campaignId": 1001, "recipientUserId": "u-1", "sendAt": expected}


def test_send_email_with_metadata(sim: IterableSimulator, make_hook: HookFactory):
    answer = make_hook().send_email(
        campaign_id=1001,
        recipient_email="ada@example.com",
        data_fields={"first": "Ada"},
        metadata={"order": "A-1"},
    )
    request = only_request(sim)
    assert (request.method, request.path) == ("POST", "/api/email/target")
    assert request.json == {
        "campaignId": 1001,
        "recipientEmail": "ada@example.com",
        "dataFields": {"first": "Ada"},
        "metadata": {"order": "A-1"},
    }
    assert_headers(request, body=True)
    assert answer["code"] == "Success"
    assert sim.sends[-1]["medium"] == "Email"


def test_send_rejects_a_bad_send_at_before_any_request(sim: IterableSimulator, make_hook: HookFactory):
    with pytest.raises(IterableConfigError, match="send_at"):
        make_hook().send_sms(campaign_id=2001, recipient_email="a@example.com", send_at="next tuesday")
    with pytest.raises(IterableConfigError, match="recipient_email or recipient_user_id"):
        make_hook().send_email(campaign_id=1001)
    assert sim.requests == []


def test_get_channels(sim: IterableSimulator, make_hook: HookFactory):
    channels = make_hook().get_channels()
    request = only_request(sim)
    assert (request.method, request.path, request.query) == ("GET", "/api/channels", {})
    assert_headers(request, body=False)
    assert {channel["messageMedium"] for channel in channels} >= {"Email", "SMS"}


def test_trigger_workflow(sim: IterableSimulator, make_hook: HookFactory):
    answer = make_hook().trigger_workflow(workflow_id=3001, email="ada@example.com", data_fields={"step": 1})
    request = only_request(sim)
    assert (request.method, request.path) == ("POST", "/api/workflows/triggerWorkflow")
    assert request.json == {"workflowId": 3001, "email": "ada@example.com", "dataFields": {"step": 1}}
    assert_headers(request, body=True)
    assert answer["code"] == "Success"
    assert len(sim.workflow_triggers) == 1


def test_trigger_workflow_for_a_list(sim: IterableSimulator, make_hook: HookFactory):
    list_id = sim.add_list("Journey audience")
    make_hook().trigger_workflow(workflow_id=3001, list_id=list_id)
    assert only_request(sim).json == {"workflowId": 3001, "listId": list_id}


def test_trigger_workflow_needs_a_target(sim: IterableSimulator, make_hook: HookFactory):
    with pytest.raises(IterableConfigError, match="email, user_id or list_id"):
        make_hook().trigger_workflow(workflow_id=3001)
    assert sim.requests == []


def test_generic_request_uses_the_endpoint_template(sim: IterableSimulator, make_hook: HookFactory):
    answer: Any = make_hook().request("GET", "/api/messageTypes")
    request = only_request(sim)
    assert (request.method, request.path, request.endpoint) == (
        "GET",
        "/api/messageTypes",
        "GET /api/messageTypes",
    )
    assert answer["messageTypes"]


def test_generic_request_refuses_a_path_outside_the_api(sim: IterableSimulator, make_hook: HookFactory):
    with pytest.raises(IterableConfigError, match="path starting with /api/"):
        make_hook().request("GET", "api/lists")
    assert sim.requests == []


def test_test_connection_succeeds(sim: IterableSimulator, make_hook: HookFactory):
    ok, message = make_hook().test_connection()
    assert ok, message
    assert sim.url in message
    request = only_request(sim)
    assert (request.method, request.path) == ("GET", "/api/channels")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda hook: hook.delete_user(user_id=42),
            "delete_user needs user_id as a non-empty string, got 42",
        ),
        (lambda hook: hook.delete_user(email=123), "delete_user needs email as a non-empty string, got 123"),
        (lambda hook: hook.bulk_update_users(None), "bulk_update_users needs users as a list"),
        # One user passed bare would have been sent as the list of its keys.
        (lambda hook: hook.bulk_update_users({"email": "a@example.com"}), "got dict"),
        (lambda hook: hook.subscribe_to_list(1, "a@example.com"), "subscribe_to_list needs subscribers"),
        (lambda hook: hook.unsubscribe_from_list(1, None), "unsubscribe_from_list needs subscribers"),
        (lambda hook: hook.track_events(7), "track_events needs events as a list"),
        (lambda hook: hook.request("GET", None), "request needs a path starting with /api/"),
        (lambda hook: hook.request(None, "/api/lists"), "request needs method as a string"),
    ],
    ids=[
        "delete_user user_id int",
        "delete_user email int",
        "bulk users None",
        "bulk users one mapping",
        "subscribers a string",
        "unsubscribers None",
        "events a number",
        "request path None",
        "request method None",
    ],
)
def test_bad_arguments_are_config_errors_before_any_request(
    sim: IterableSimulator, make_hook: HookFactory, call: Any, match: str
):
    with pytest.raises(IterableConfigError, match=match):
        call(make_hook())
    assert sim.requests == []


def test_bulk_items_may_come_from_any_iterable(sim: IterableSimulator, make_hook: HookFactory):
    answer = make_hook().track_events(
        {"eventName": "open", "email": f"u{n}@example.com", "id": f"e-{n}"} for n in range(3)
    )
    assert len(only_request(sim).json["events"]) == 3
    assert answer["successCount"] == 3
