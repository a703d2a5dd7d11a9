"""The simulator answers each Iterable action with Iterable's shapes, status codes and semantics."""

from __future__ import annotations

import time

import pytest

from airflow_provider_iterable.testing import IterableSimulator
from tests.testing._client import ApiClient

FAILED_KEYS = {
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
    "forgottenEmails",
    "forgottenUserIds",
    "conflictEmails",
    "conflictUserIds",
    "invalidDataEmails",
    "invalidDataUserIds",
}


def _success(answer_json: dict) -> None:
    assert answer_json["code"] == "Success"
    assert set(answer_json) == {"msg", "code", "params"}


# --------------------------------------------------------------------------- auth and routing
def test_missing_api_key_is_401_bad_api_key(sim: IterableSimulator) -> None:
    import requests

    answer = requests.get(sim.url + "/api/channels", timeout=5)
    assert answer.status_code == 401
    assert answer.json()["code"] == "BadApiKey"


def test_wrong_api_key_is_401_bad_api_key(sim: IterableSimulator) -> None:
    with ApiClient(sim, api_key="ffffffffffffffffffffffffffffffff") as client:
        answer = client.post("/api/users/update", json={"email": "a@example.com"})
    assert answer.status_code == 401
    assert answer.json() == {"msg": "Invalid API key", "code": "BadApiKey", "params": None}
    assert sim.get_user(email="a@example.com") is None


def test_custom_api_key_is_the_only_one_accepted() -> None:
    with IterableSimulator(api_key="abcdefabcdefabcdefabcdefabcdefab") as sim:
        with ApiClient(sim) as client:
            assert client.get("/api/channels").status_code == 200
        with ApiClient(sim, api_key=sim.api_key.upper()) as client:
            assert client.get("/api/channels").status_code == 401


def test_unknown_route_is_404_html_action_not_found(api: ApiClient) -> None:
    answer = api.get("/api/users/nothing/here")
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "Action not found" in answer.text


def test_known_path_with_wrong_method_is_404(api: ApiClient) -> None:
    answer = api.get("/api/users/bulkUpdate/extra")
    assert answer.status_code == 404
    answer = api.session.put(api.base + "/api/users/update", json={}, timeout=5)
    assert answer.status_code == 404
    assert "Action not found" in answer.text


def test_invalid_json_is_400_bad_json_body(api: ApiClient) -> None:
    answer = api.post("/api/users/update", data=b'{"email": ', headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "BadJsonBody"


@pytest.mark.parametrize("raw", [b'{"email": NaN}', b"[" * 100_000, b"\xff\xfe{}"])
def test_non_json_bodies_are_400_bad_json_body(api: ApiClient, raw: bytes) -> None:
    answer = api.post("/api/users/update", data=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "BadJsonBody"
    assert api.get("/api/channels").status_code == 200


def test_empty_post_body_is_400_bad_json_body(api: ApiClient) -> None:
    answer = api.post("/api/events/track")
    assert answer.status_code == 400
    assert answer.json()["code"] == "BadJsonBody"


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/users/bulkUpdate", {}, None),
        ("/api/users/bulkUpdate", {"users": {"email": "a@example.com"}}, "users"),
        ("/api/users/bulkUpdate", {"users": [{"email": 42}]}, "users[0].email"),
        ("/api/users/update", {"email": "a@example.com", "dataFields": [1, 2]}, "dataFields"),
        ("/api/lists/subscribe", {"listId": "5", "subscribers": []}, "listId"),
        ("/api/lists", {"description": "no name"}, None),
        ("/api/events/track", {"email": "a@example.com"}, None),
        (
            "/api/events/track",
            {"eventName": "x", "email": "a@example.com", "createdAt": "yesterday"},
            "createdAt",
        ),
        ("/api/email/target", {"recipientEmail": "a@example.com"}, None),
        ("/api/workflows/triggerWorkflow", {"workflowId": True, "email": "a@example.com"}, "workflowId"),
        (
            "/api/users/updateSubscriptions",
            {"email": "a@example.com", "emailListIds": ["x"]},
            "emailListIds[0]",
        ),
    ],
)
def test_body_not_matching_the_spec_is_400_bad_params(
    api: ApiClient, path: str, body: dict, field: str | None
) -> None:
    answer = api.post(path, json=body)
    assert answer.status_code == 400
    payload = answer.json()
    assert payload["code"] == "BadParams"
    assert payload["params"]["field"] == field
    if field:
        assert field in payload["msg"]
    else:
        assert "required property" in payload["msg"]


def test_body_that_is_not_an_object_is_400_bad_params(api: ApiClient) -> None:
    answer = api.post("/api/users/update", json=["a@example.com"])
    assert answer.status_code == 400
    assert answer.json()["code"] == "BadParams"


def test_integral_float_is_accepted_as_an_integer(api: ApiClient) -> None:
    list_id = api.post("/api/lists", json={"name": "Floats"}).json()["listId"]
    answer = api.post(
        "/api/lists/subscribe", json={"listId": float(list_id), "subscribers": [{"email": "f@example.com"}]}
    )
    assert answer.status_code == 200
    assert answer.json()["successCount"] == 1


def test_update_without_email_or_user_id_is_400(api: ApiClient) -> None:
    answer = api.post("/api/users/update", json={"dataFields": {"a": 1}})
    assert answer.status_code == 400
    assert answer.json()["code"] == "BadParams"
    assert "email or userId" in answer.json()["msg"]


def test_update_with_invalid_email_is_400_invalid_email(api: ApiClient) -> None:
    answer = api.post("/api/users/update", json={"email": "not-an-email"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "InvalidEmailAddressError"


def test_update_with_invalid_user_id_is_400_invalid_user_id(api: ApiClient) -> None:
    answer = api.post("/api/users/update", json={"userId": "trailing "})
    assert answer.status_code == 400
    assert answer.json()["code"] == "InvalidUserIdError"


# --------------------------------------------------------------------------------- users
def test_update_then_get_by_email_merges_data_fields(api: ApiClient, sim: IterableSimulator) -> None:
    first = api.post("/api/users/update", json={"email": "ada@example.com", "dataFields": {"a": 1, "b": "x"}})
    assert first.status_code == 200
    _success(first.json())
    api.post("/api/users/update", json={"email": "ada@example.com", "dataFields": {"b": "y", "c": True}})
    answer = api.get("/api/users/getByEmail", params={"email": "ada@example.com"})
    assert answer.status_code == 200
    user = answer.json()["user"]
    assert user["email"] == "ada@example.com"
    assert {k: user["dataFields"][k] for k in "abc"} == {"a": 1, "b": "y", "c": True}
    assert user["dataFields"]["email"] == "ada@example.com"
    assert "signupDate" in user["dataFields"]
    assert sim.get_user(email="ada@example.com") == user


def test_nested_objects_are_replaced_unless_merge_nested_objects(
    api: ApiClient, sim: IterableSimulator
) -> None:
    api.post("/api/users/update", json={"email": "n@example.com", "dataFields": {"s": {"mobile": True}}})
    api.post("/api/users/update", json={"email": "n@example.com", "dataFields": {"s": {"email": True}}})
    assert sim.get_user(email="n@example.com")["dataFields"]["s"] == {"email": True}
    api.post(
        "/api/users/update",
        json={"email": "n@example.com", "dataFields": {"s": {"push": False}}, "mergeNestedObjects": True},
    )
    assert sim.get_user(email="n@example.com")["dataFields"]["s"] == {"email": True, "push": False}


def test_field_type_can_never_change(api: ApiClient, sim: IterableSimulator) -> None:
    api.post("/api/users/update", json={"email": "t@example.com", "dataFields": {"age": 41}})
    answer = api.post("/api/users/update", json={"email": "other@example.com", "dataFields": {"age": "41"}})
    assert answer.status_code == 400
    assert answer.json()["code"] == "RequestFieldsTypesMismatched"
    assert "age" in answer.json()["msg"]
    assert sim.get_user(email="other@example.com") is None


def test_nested_field_type_is_checked_too(api: ApiClient) -> None:
    api.post("/api/users/update", json={"email": "t@example.com", "dataFields": {"p": {"n": 1}}})
    answer = api.post("/api/users/update", json={"email": "t@example.com", "dataFields": {"p": {"n": "one"}}})
    assert answer.json()["code"] == "RequestFieldsTypesMismatched"
    assert "p.n" in answer.json()["msg"]


def test_unknown_user_is_200_with_empty_object(api: ApiClient) -> None:
    for answer in (
        api.get("/api/users/getByEmail", params={"email": "nobody@example.com"}),
        api.get("/api/users/byUserId", params={"userId": "nobody"}),
        api.get("/api/users/byUserId/nobody"),
        api.get("/api/users/nobody@example.com"),
    ):
        assert answer.status_code == 200
        assert answer.json() == {}


def test_get_by_email_without_email_is_400(api: ApiClient) -> None:
    assert api.get("/api/users/getByEmail").status_code == 400


def test_user_found_by_user_id_and_by_email_path(api: ApiClient) -> None:
    api.post("/api/users/update", json={"email": "a+b@example.com", "userId": "u-1", "dataFields": {"k": 1}})
    by_query = api.get("/api/users/byUserId", params={"userId": "u-1"}).json()
    by_path = api.get("/api/users/byUserId/u-1").json()
    by_email_path = api.get("/api/users/a%2Bb%40example.com").json()
    assert by_query == by_path == by_email_path
    assert by_query["user"]["userId"] == "u-1"
    assert by_query["user"]["email"] == "a+b@example.com"


def test_user_id_only_user_gets_a_placeholder_email(api: ApiClient, sim: IterableSimulator) -> None:
    api.post("/api/users/update", json={"userId": "only-id", "dataFields": {"x": 1}})
    user = sim.get_user(user_id="only-id")
    assert user is not None
    assert user["email"].endswith("@placeholder.email")


def test_user_id_owned_by_another_user_is_409(api: ApiClient) -> None:
    api.post("/api/users/update", json={"email": "one@example.com", "userId": "shared"})
    answer = api.post("/api/users/update", json={"email": "two@example.com", "userId": "shared"})
    assert answer.status_code == 409
    assert api.get("/api/users/byUserId", params={"userId": "shared"}).json()["user"]["email"] == (
        "one@example.com"
    )


def test_create_new_fields_false_drops_unknown_fields(api: ApiClient, sim: IterableSimulator) -> None:
    api.post("/api/users/update", json={"email": "k@example.com", "dataFields": {"known": 1}})
    answer = api.post(
        "/api/users/bulkUpdate",
        json={
            "users": [{"email": "k@example.com", "dataFields": {"known": 2, "fresh": "x"}}],
            "createNewFields": False,
        },
    ).json()
    assert answer["filteredOutFields"] == ["fresh"]
    assert answer["successCount"] == 1
    fields = sim.get_user(email="k@example.com")["dataFields"]
    assert fields["known"] == 2
    assert "fresh" not in fields


def test_delete_user_by_email_and_by_user_id(api: ApiClient, sim: IterableSimulator) -> None:
    api.post("/api/users/update", json={"email": "gone@example.com"})
    api.post("/api/users/update", json={"userId": "gone-id"})
    answer = api.delete("/api/users/gone%40example.com")
    assert answer.status_code == 200
    _success(answer.json())
    assert api.delete("/api/users/byUserId/gone-id").status_code == 200
    assert sim.get_user(email="gone@example.com") is None
    assert sim.get_user(user_id="gone-id") is None


def test_forgotten_user_update_is_409(api: ApiClient, sim: IterableSimulator) -> None:
    sim.add_user(email="f@example.com")
    sim.forget_user(email="f@example.com")
    answer = api.post("/api/users/update", json={"email": "f@example.com"})
    assert answer.status_code == 409
    assert answer.json()["code"] == "ForgottenUserError"


# ---------------------------------------------------------------------------- bulk update
def test_bulk_update_answer_shape_and_partial_failures(api: ApiClient, sim: IterableSimulator) -> None:
    sim.add_user(email="typed@example.com", data_fields={"score": 1})
    sim.forget_user(email="forgotten@example.com")
    answer = api.post(
        "/api/users/bulkUpdate",
        json={
            "users": [
                {"email": "ok@example.com", "dataFields": {"plan": "pro"}},
                {"email": "broken"},
                {"userId": "uid-ok"},
                {"userId": ""},
                {"email": "wrongtype@example.com", "dataFields": {"score": "high"}},
                {"email": "forgotten@example.com"},
            ]
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["successCount"] == 2
    assert body["failCount"] == 4
    assert set(body["failedUpdates"]) == FAILED_KEYS
    failed = body["failedUpdates"]
    assert failed["invalidEmails"] == ["broken"]
    assert failed["invalidUserIds"] == [""]
    assert failed["invalidDataEmails"] == ["wrongtype@example.com"]
    assert failed["forgottenEmails"] == ["forgotten@example.com"]
    assert body["createdFields"] == ["plan"]
    assert body["filteredOutFields"] == []
    assert sim.get_user(email="ok@example.com")["dataFields"]["plan"] == "pro"
    assert sim.get_user(email="broken") is None


def test_bulk_update_larger_than_4_mb_is_413(api: ApiClient) -> None:
    users = [{"email": f"u{i}@example.com", "dataFields": {"pad": "x" * 4200}} for i in range(1000)]
    answer = api.post("/api/users/bulkUpdate", json={"users": users})
    assert answer.status_code == 413
    assert answer.json()["code"] == "BatchTooLarge"


# ---------------------------------------------------------------------------------- lists
def test_create_and_list_lists(api: ApiClient, sim: IterableSimulator) -> None:
    before = int(time.time() * 1000)
    answer = api.post("/api/lists", json={"name": "VIPs", "description": "big spenders"})
    assert answer.status_code == 200
    list_id = answer.json()["listId"]
    assert isinstance(list_id, int)
    lists = api.get("/api/lists").json()["lists"]
    assert lists == [
        {
            "id": list_id,
            "name": "VIPs",
            "description": "big spenders",
            "createdAt": lists[0]["createdAt"],
            "listType": "Standard",
        }
    ]
    assert lists[0]["createdAt"] >= before
    assert sim.lists[list_id]["name"] == "VIPs"


def test_subscribe_and_unsubscribe(api: ApiClient, sim: IterableSimulator) -> None:
    list_id = sim.add_list("Newsletter")
    answer = api.post(
        "/api/lists/subscribe",
        json={
            "listId": list_id,
            "subscribers": [
                {"email": "s1@example.com", "dataFields": {"src": "web"}},
                {"email": "bad-address"},
                {"userId": "s2"},
            ],
        },
    ).json()
    assert answer["successCount"] == 2
    assert answer["failCount"] == 1
    assert answer["failedUpdates"]["invalidEmails"] == ["bad-address"]
    assert sim.list_members(list_id) == {"s1@example.com", "s2"}
    assert sim.get_user(email="s1@example.com")["dataFields"]["emailListIds"] == [list_id]
    answer = api.post(
        "/api/lists/unsubscribe",
        json={
            "listId": list_id,
            "subscribers": [{"email": "s1@example.com"}, {"email": "never@example.com"}],
        },
    ).json()
    assert answer["successCount"] == 1
    assert answer["failedUpdates"]["notFoundEmails"] == ["never@example.com"]
    assert sim.list_members(list_id) == {"s2"}


def test_subscribe_existing_users_only_reports_unknown_ones(api: ApiClient, sim: IterableSimulator) -> None:
    list_id = sim.add_list("Existing")
    sim.add_user(email="known@example.com")
    answer = api.post(
        "/api/lists/subscribe",
        json={
            "listId": list_id,
            "subscribers": [{"email": "known@example.com"}, {"email": "new@example.com"}],
            "updateExistingUsersOnly": True,
        },
    ).json()
    assert answer["successCount"] == 1
    assert answer["failedUpdates"]["notFoundEmails"] == ["new@example.com"]
    assert sim.get_user(email="new@example.com") is None


def test_subscribe_to_unknown_list_is_400_with_code_success(api: ApiClient) -> None:
    answer = api.post(
        "/api/lists/subscribe", json={"listId": 987654, "subscribers": [{"email": "a@example.com"}]}
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "Success"
    assert "987654" in answer.json()["msg"]


def test_list_size_and_users(api: ApiClient, sim: IterableSimulator) -> None:
    list_id = sim.add_list("Sized")
    api.post("/api/lists/subscribe", json={"listId": list_id, "subscribers": [{"email": "z@example.com"}]})
    assert api.get(f"/api/lists/{list_id}/size").text == "1"
    assert api.get("/api/lists/getUsers", params={"listId": list_id}).text == "z@example.com"


def test_update_subscriptions_replaces_the_fields_it_is_given(api: ApiClient, sim: IterableSimulator) -> None:
    first, second, third = (sim.add_list(name) for name in ("A", "B", "C"))
    api.post("/api/lists/subscribe", json={"listId": first, "subscribers": [{"email": "r@example.com"}]})
    api.post("/api/lists/subscribe", json={"listId": second, "subscribers": [{"email": "r@example.com"}]})
    api.post(
        "/api/users/updateSubscriptions",
        json={
            "email": "r@example.com",
            "unsubscribedChannelIds": [3],
            "unsubscribedMessageTypeIds": [11, 12],
        },
    )
    answer = api.post(
        "/api/users/updateSubscriptions", json={"email": "r@example.com", "emailListIds": [third]}
    )
    assert answer.status_code == 200
    _success(answer.json())
    fields = sim.get_user(email="r@example.com")["dataFields"]
    assert fields["emailListIds"] == [third]
    assert sim.list_members(first) == set()
    assert sim.list_members(third) == {"r@example.com"}
    # Fields not sent stay as they were.
    assert fields["unsubscribedChannelIds"] == [3]
    api.post(
        "/api/users/updateSubscriptions", json={"email": "r@example.com", "unsubscribedMessageTypeIds": []}
    )
    fields = sim.get_user(email="r@example.com")["dataFields"]
    assert fields["unsubscribedMessageTypeIds"] == []
    assert fields["unsubscribedChannelIds"] == [3]


# --------------------------------------------------------------------------------- events
def test_track_event_returns_its_id(api: ApiClient, sim: IterableSimulator) -> None:
    answer = api.post(
        "/api/events/track",
        json={"eventName": "purchase", "email": "e@example.com", "dataFields": {"amount": 9.5}},
    )
    assert answer.status_code == 200
    body = answer.json()
    _success(body)
    event_id = body["params"]["id"]
    assert sim.events[0]["id"] == event_id
    assert sim.events[0]["dataFields"] == {"amount": 9.5}
    assert abs(sim.events[0]["createdAt"] - time.time()) < 60


def test_track_same_id_updates_instead_of_duplicating(api: ApiClient, sim: IterableSimulator) -> None:
    for amount in (1, 2):
        api.post(
            "/api/events/track",
            json={
                "eventName": "purchase",
                "email": "e@example.com",
                "id": "order-1",
                "createdAt": 1700000000,
                "dataFields": {"amount": amount},
            },
        )
    assert len(sim.events) == 1
    assert sim.events[0]["dataFields"] == {"amount": 2}
    assert sim.events[0]["createdAt"] == 1700000000


def test_track_id_longer_than_512_bytes_is_400(api: ApiClient, sim: IterableSimulator) -> None:
    answer = api.post("/api/events/track", json={"eventName": "x", "email": "e@example.com", "id": "é" * 257})
    assert answer.status_code == 400
    assert sim.events == []


def test_track_event_field_types_are_per_event_name(api: ApiClient) -> None:
    api.post("/api/events/track", json={"eventName": "a", "email": "e@example.com", "dataFields": {"v": 1}})
    same_name = api.post(
        "/api/events/track", json={"eventName": "a", "email": "e@example.com", "dataFields": {"v": "s"}}
    )
    other_name = api.post(
        "/api/events/track", json={"eventName": "b", "email": "e@example.com", "dataFields": {"v": "s"}}
    )
    assert same_name.json()["code"] == "RequestFieldsTypesMismatched"
    assert other_name.status_code == 200


def test_track_bulk_counts_and_disallowed_names(api: ApiClient, sim: IterableSimulator) -> None:
    sim.disallow_event_name("forbidden")
    answer = api.post(
        "/api/events/trackBulk",
        json={
            "events": [
                {"eventName": "click", "email": "b1@example.com"},
                {"eventName": "click", "email": "nope"},
                {"eventName": "forbidden", "email": "b1@example.com"},
                {"eventName": "click", "userId": "b2"},
            ]
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["successCount"] == 2
    assert body["failCount"] == 2
    assert body["disallowedEventNames"] == ["forbidden"]
    assert set(body["failedUpdates"]) == FAILED_KEYS
    assert body["failedUpdates"]["invalidEmails"] == ["nope"]
    assert [e["eventName"] for e in sim.events] == ["click", "click"]


# ---------------------------------------------------------------------- sends and journeys
def test_email_target_records_the_send(api: ApiClient, sim: IterableSimulator) -> None:
    answer = api.post(
        "/api/email/target",
        json={
            "campaignId": 1001,
            "recipientEmail": "m@example.com",
            "dataFields": {"name": "Ada"},
            "metadata": {"orderId": "o-1"},
        },
    )
    assert answer.status_code == 200
    _success(answer.json())
    send = sim.sends[0]
    assert send["medium"] == "Email"
    assert send["campaignId"] == 1001
    assert send["recipientEmail"] == "m@example.com"
    assert send["metadata"] == {"orderId": "o-1"}
    assert send["messageId"] == answer.json()["params"]["messageId"]


def test_sms_target_to_user_id(api: ApiClient, sim: IterableSimulator) -> None:
    sim.add_user(user_id="phone-user", data_fields={"phoneNumber": "+15555550100"})
    answer = api.post("/api/sms/target", json={"campaignId": 2001, "recipientUserId": "phone-user"})
    assert answer.status_code == 200
    assert sim.sends[0]["medium"] == "SMS"
    assert sim.sends[0]["recipientUserId"] == "phone-user"


def test_sms_to_unknown_user_id_is_400(api: ApiClient, sim: IterableSimulator) -> None:
    answer = api.post("/api/sms/target", json={"campaignId": 2001, "recipientUserId": "ghost"})
    assert answer.status_code == 400
    assert sim.sends == []


@pytest.mark.parametrize(
    ("path", "campaign_id"),
    [("/api/email/target", 424242), ("/api/sms/target", 424242), ("/api/email/target", 2001)],
)
def test_send_to_unknown_or_wrong_medium_campaign_is_400(
    api: ApiClient, sim: IterableSimulator, path: str, campaign_id: int
) -> None:
    answer = api.post(path, json={"campaignId": campaign_id, "recipientEmail": "m@example.com"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "BadParams"
    assert str(campaign_id) in answer.json()["msg"]
    assert sim.sends == []


def test_added_campaign_is_accepted(api: ApiClient, sim: IterableSimulator) -> None:
    sim.add_campaign(777, "SMS")
    answer = api.post("/api/sms/target", json={"campaignId": 777, "recipientEmail": "m@example.com"})
    assert answer.status_code == 200
    assert [(s["campaignId"], s["medium"]) for s in sim.sends] == [(777, "SMS")]


def test_send_without_recipient_is_400(api: ApiClient, sim: IterableSimulator) -> None:
    answer = api.post("/api/email/target", json={"campaignId": 1001})
    assert answer.status_code == 400
    assert sim.sends == []


def test_send_at_must_be_iterable_format(api: ApiClient, sim: IterableSimulator) -> None:
    bad = api.post(
        "/api/sms/target",
        json={"campaignId": 2001, "recipientEmail": "m@example.com", "sendAt": "2026-01-01T10:00:00Z"},
    )
    good = api.post(
        "/api/sms/target",
        json={"campaignId": 2001, "recipientEmail": "m@example.com", "sendAt": "2026-01-01 10:00:00"},
    )
    assert bad.status_code == 400
    assert good.status_code == 200
    assert len(sim.sends) == 1


def test_trigger_workflow(api: ApiClient, sim: IterableSimulator) -> None:
    answer = api.post(
        "/api/workflows/triggerWorkflow",
        json={"workflowId": 3001, "email": "j@example.com", "dataFields": {"k": "v"}},
    )
    assert answer.status_code == 200
    _success(answer.json())
    assert sim.workflow_triggers[0]["workflowId"] == 3001
    assert sim.workflow_triggers[0]["email"] == "j@example.com"
    assert sim.workflow_triggers[0]["dataFields"] == {"k": "v"}
    assert api.post("/api/workflows/triggerWorkflow", json={"workflowId": 9}).status_code == 400
    sim.add_workflow(9)
    list_id = sim.add_list("Journey list")
    assert (
        api.post("/api/workflows/triggerWorkflow", json={"workflowId": 9, "listId": list_id}).status_code
        == 200
    )
    assert api.post("/api/workflows/triggerWorkflow", json={"workflowId": 9}).status_code == 400


# ------------------------------------------------------------------------- project metadata
def test_channels_message_types_and_campaigns(api: ApiClient) -> None:
    channels = api.get("/api/channels").json()["channels"]
    assert {c["messageMedium"] for c in channels} >= {"Email", "SMS"}
    assert all(set(c) == {"id", "name", "channelType", "messageMedium"} for c in channels)
    types = api.get("/api/messageTypes").json()["messageTypes"]
    channel_ids = {c["id"] for c in channels}
    assert types and all(t["channelId"] in channel_ids for t in types)
    campaigns = {c["id"]: c for c in api.get("/api/campaigns").json()["campaigns"]}
    assert campaigns[1001]["messageMedium"] == "Email"
    assert campaigns[2001]["messageMedium"] == "SMS"


def test_get_fields_reports_the_field_types(api: ApiClient) -> None:
    api.post("/api/users/update", json={"email": "g@example.com", "dataFields": {"n": 1, "o": {"s": "x"}}})
    fields = api.get("/api/users/getFields").json()["fields"]
    assert fields["n"] == "long"
    assert fields["o"] == "object"
    assert fields["o.s"] == "string"
