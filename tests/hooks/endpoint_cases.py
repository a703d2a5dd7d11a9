"""One call per endpoint class, for the retry tests: which calls may be repeated, which must not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_iterable.hooks.iterable import IterableHook
from airflow_provider_iterable.testing import IterableSimulator

EMAIL = "retry@example.com"
USER_ID = "retry-user"


@dataclass(frozen=True)
class EndpointCase:
    """A hook call against one endpoint.

    :param name: test id.
    :param endpoint: the simulator's endpoint key the call reaches.
    :param safe: whether repeating it after it may have arrived is harmless (ITERABLE_API.md).
    :param prepare: seeds the simulator; its result is handed to ``call``.
    :param call: makes the call.
    """

    name: str
    endpoint: str
    safe: bool
    prepare: Callable[[IterableSimulator], Any]
    call: Callable[[IterableHook, Any], Any]

    def __str__(self) -> str:
        return self.name


def _nothing(sim: IterableSimulator) -> None:
    return None


def _user(sim: IterableSimulator) -> None:
    sim.add_user(email=EMAIL)
    sim.add_user(user_id=USER_ID)


def _list(sim: IterableSimulator) -> int:
    _user(sim)
    return sim.add_list("Retry list")


CASES: list[EndpointCase] = [
    EndpointCase(
        "users/update",
        "POST /api/users/update",
        True,
        _nothing,
        lambda hook, _: hook.upsert_user(email=EMAIL, data_fields={"n": 1}),
    ),
    EndpointCase(
        "users/bulkUpdate",
        "POST /api/users/bulkUpdate",
        True,
        _nothing,
        lambda hook, _: hook.bulk_update_users([{"email": EMAIL, "dataFields": {"n": 1}}]),
    ),
    EndpointCase(
        "users/getByEmail",
        "GET /api/users/getByEmail",
        True,
        _user,
        lambda hook, _: hook.get_user_by_email(EMAIL),
    ),
    EndpointCase(
        "users/byUserId",
        "GET /api/users/byUserId",
        True,
        _user,
        lambda hook, _: hook.get_user_by_id(USER_ID),
    ),
    EndpointCase(
        "users/updateSubscriptions",
        "POST /api/users/updateSubscriptions",
        True,
        _user,
        lambda hook, _: hook.update_subscriptions(email=EMAIL, unsubscribed_channel_ids=[1]),
    ),
    EndpointCase(
        "DELETE users/{email}",
        "DELETE /api/users/{email}",
        True,
        _user,
        lambda hook, _: hook.delete_user(email=EMAIL),
    ),
    EndpointCase(
        "DELETE users/byUserId/{userId}",
        "DELETE /api/users/byUserId/{userId}",
        True,
        _user,
        lambda hook, _: hook.delete_user(user_id=USER_ID),
    ),
    EndpointCase("GET lists", "GET /api/lists", True, _nothing, lambda hook, _: hook.get_lists()),
    EndpointCase(
        "lists/subscribe",
        "POST /api/lists/subscribe",
        True,
        _list,
        lambda hook, list_id: hook.subscribe_to_list(list_id, [{"email": EMAIL}]),
    ),
    EndpointCase(
        "lists/unsubscribe",
        "POST /api/lists/unsubscribe",
        True,
        _list,
        lambda hook, list_id: hook.unsubscribe_from_list(list_id, [{"email": EMAIL}]),
    ),
    EndpointCase("GET channels", "GET /api/channels", True, _nothing, lambda hook, _: hook.get_channels()),
    EndpointCase(
        "events/track with id",
        "POST /api/events/track",
        True,
        _nothing,
        lambda hook, _: hook.track_event(event_name="visit", email=EMAIL, event_id="visit-1"),
    ),
    EndpointCase(
        "events/trackBulk every id",
        "POST /api/events/trackBulk",
        True,
        _nothing,
        lambda hook, _: hook.track_events(
            [
                {"eventName": "visit", "email": EMAIL, "id": "v-1"},
                {"eventName": "visit", "email": EMAIL, "id": "v-2"},
            ]
        ),
    ),
    EndpointCase("POST lists", "POST /api/lists", False, _nothing, lambda hook, _: hook.create_list("Once")),
    EndpointCase(
        "sms/target",
        "POST /api/sms/target",
        False,
        _user,
        lambda hook, _: hook.send_sms(campaign_id=2001, recipient_email=EMAIL),
    ),
    EndpointCase(
        "email/target",
        "POST /api/email/target",
        False,
        _user,
        lambda hook, _: hook.send_email(campaign_id=1001, recipient_email=EMAIL),
    ),
    EndpointCase(
        "workflows/triggerWorkflow",
        "POST /api/workflows/triggerWorkflow",
        False,
        _user,
        lambda hook, _: hook.trigger_workflow(workflow_id=3001, email=EMAIL),
    ),
    EndpointCase(
        "events/track without id",
        "POST /api/events/track",
        False,
        _nothing,
        lambda hook, _: hook.track_event(event_name="visit", email=EMAIL),
    ),
    EndpointCase(
        "events/trackBulk one without id",
        "POST /api/events/trackBulk",
        False,
        _nothing,
        lambda hook, _: hook.track_events(
            [{"eventName": "visit", "email": EMAIL, "id": "v-1"}, {"eventName": "visit", "email": EMAIL}]
        ),
    ),
]

SAFE_CASES = [case for case in CASES if case.safe]
UNSAFE_CASES = [case for case in CASES if not case.safe]
