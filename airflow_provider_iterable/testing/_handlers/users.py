"""Handlers of the user actions: update, bulk update, look-ups, deletion, subscriptions."""

from __future__ import annotations

import time

from airflow_provider_iterable.testing._answers import (
    Answer,
    ApiError,
    Call,
    ItemError,
    bulk_answer,
    empty_failures,
    envelope,
)
from airflow_provider_iterable.testing._project import Project, User
from airflow_provider_iterable.testing._validation import valid_email

#: Largest body Iterable accepts on ``users/bulkUpdate``.
BULK_UPDATE_MAX_BYTES = 4 * 1024 * 1024


def _users_update(project: Project, call: Call) -> Answer:
    body = call.body
    allow_new = body.get("createNewFields") is not False
    try:
        project.upsert(body, allow_new)
    except ItemError as exc:
        raise exc.api_error() from None
    return Answer(200, envelope("User updated"))


def _users_bulk_update(project: Project, call: Call) -> Answer:
    allow_new = call.body.get("createNewFields") is not False
    failed = empty_failures()
    created: list[str] = []
    filtered: list[str] = []
    success = 0
    for record in call.body["users"]:
        try:
            new, dropped = project.upsert(record, allow_new)
        except ItemError as exc:
            failed[exc.key].append(exc.value)
            continue
        created += new
        filtered += dropped
        success += 1
    return Answer(200, bulk_answer(success, failed, created, filtered))


def _get_user(project: Project, email: str | None = None, user_id: str | None = None) -> Answer:
    user = project.find_user(email, user_id)
    # Iterable answers 200 with an empty object for an unknown user.
    return Answer(200, {} if user is None else {"user": project.user_view(user)})


def _users_get_by_email(project: Project, call: Call) -> Answer:
    email = call.query_value("email")
    if not email:
        raise ApiError(400, "BadParams", "Missing required query parameter: email")
    return _get_user(project, email=valid_email(email))


def _users_by_email_path(project: Project, call: Call) -> Answer:
    return _get_user(project, email=valid_email(call.params["email"]))


def _users_by_user_id(project: Project, call: Call) -> Answer:
    user_id = call.params.get("userId") or call.query_value("userId")
    if not user_id:
        raise ApiError(400, "BadParams", "Missing required parameter: userId")
    return _get_user(project, user_id=user_id)


def _delete_user(project: Project, email: str | None = None, user_id: str | None = None) -> Answer:
    user = project.find_user(email, user_id)
    # Deletion is asynchronous at Iterable: the answer does not say whether the user existed.
    if user is not None:
        project.delete_user(user)
    return Answer(200, envelope("User deletion queued", params={"deleted": user is not None}))


def _users_delete_by_email(project: Project, call: Call) -> Answer:
    return _delete_user(project, email=valid_email(call.params["email"]))


def _users_delete_by_user_id(project: Project, call: Call) -> Answer:
    return _delete_user(project, user_id=call.params["userId"])


def _set_memberships(project: Project, user: User, list_ids: list[int]) -> None:
    key = project.member_key(user)
    wanted = set(list_ids)
    for list_id, lst in project.lists.items():
        if list_id in wanted:
            lst["subscribers"].add(key)
        else:
            lst["subscribers"].discard(key)
    user.email_list_ids = sorted(wanted)


def _users_update_subscriptions(project: Project, call: Call) -> Answer:
    body = call.body
    try:
        user, _, _ = project.resolve(body.get("email"), body.get("userId"))
    except ItemError as exc:
        raise exc.api_error() from None
    assert user is not None
    # Every field sent REPLACES the stored one; fields not sent are left alone.
    if "emailListIds" in body:
        _set_memberships(project, user, [int(i) for i in body["emailListIds"]])
    for key in ("unsubscribedChannelIds", "unsubscribedMessageTypeIds", "subscribedMessageTypeIds"):
        if key in body:
            user.subscriptions[key] = sorted({int(i) for i in body[key]})
    user.updated = time.time()
    return Answer(200, envelope("User subscriptions updated"))


#: Handlers by endpoint key.
HANDLERS = {
    "POST /api/users/update": _users_update,
    "POST /api/users/bulkUpdate": _users_bulk_update,
    "GET /api/users/getByEmail": _users_get_by_email,
    "GET /api/users/byUserId": _users_by_user_id,
    "GET /api/users/byUserId/{userId}": _users_by_user_id,
    "DELETE /api/users/byUserId/{userId}": _users_delete_by_user_id,
    "GET /api/users/{email}": _users_by_email_path,
    "DELETE /api/users/{email}": _users_delete_by_email,
    "POST /api/users/updateSubscriptions": _users_update_subscriptions,
}

#: Largest body in bytes by endpoint key, refused with 413 before it is parsed.
BODY_LIMITS = {"POST /api/users/bulkUpdate": BULK_UPDATE_MAX_BYTES}
