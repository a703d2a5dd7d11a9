"""Handlers of the list actions: create, list, subscribe, unsubscribe, members, size, delete."""

from __future__ import annotations

from typing import Any

from airflow_provider_iterable.testing._answers import (
    Answer,
    ApiError,
    Call,
    ItemError,
    bulk_answer,
    empty_failures,
    envelope,
    int_param,
)
from airflow_provider_iterable.testing._project import Project


def _lists_get(project: Project, call: Call) -> Answer:
    lists = [
        {k: v for k, v in lst.items() if k != "subscribers" and (k != "description" or v is not None)}
        for lst in project.lists.values()
    ]
    return Answer(200, {"lists": lists})


def _lists_create(project: Project, call: Call) -> Answer:
    name = call.body["name"]
    if not name.strip():
        raise ApiError(400, "BadParams", "List name must not be empty")
    return Answer(200, {"listId": project.add_list(name, call.body.get("description"))})


def known_list(project: Project, list_id: Any) -> dict[str, Any]:
    """Return the list with ``list_id``, or raise the 400 Iterable answers for an unknown one."""
    lst = project.lists.get(list_id)
    if lst is None:
        # Iterable really answers an unknown list id with HTTP 400 and code "Success".
        raise ApiError(400, "Success", f"Invalid listId: {list_id}", {"listId": list_id})
    return lst


def _lists_subscribe(project: Project, call: Call) -> Answer:
    lst = known_list(project, call.body["listId"])
    existing_only = bool(call.body.get("updateExistingUsersOnly"))
    failed = empty_failures()
    created: list[str] = []
    filtered: list[str] = []
    success = 0
    for record in call.body["subscribers"]:
        email, user_id = record.get("email"), record.get("userId")
        try:
            user, ident, suffix = project.resolve(email, user_id, create=False)
            if user is None and existing_only:
                failed[f"notFound{suffix}"].append(ident)
                continue
            new, dropped = project.upsert(record, allow_new=True)
            user, _, _ = project.resolve(email, user_id)
        except ItemError as exc:
            failed[exc.key].append(exc.value)
            continue
        assert user is not None
        created += new
        filtered += dropped
        lst["subscribers"].add(project.member_key(user))
        if lst["id"] not in user.email_list_ids:
            user.email_list_ids = sorted([*user.email_list_ids, lst["id"]])
        success += 1
    return Answer(200, bulk_answer(success, failed, created, filtered))


def _lists_unsubscribe(project: Project, call: Call) -> Answer:
    lst = known_list(project, call.body["listId"])
    channel_unsubscribe = bool(call.body.get("channelUnsubscribe"))
    failed = empty_failures()
    success = 0
    for record in call.body["subscribers"]:
        try:
            user, ident, suffix = project.resolve(record.get("email"), record.get("userId"), create=False)
        except ItemError as exc:
            failed[exc.key].append(exc.value)
            continue
        if user is None:
            failed[f"notFound{suffix}"].append(ident)
            continue
        lst["subscribers"].discard(project.member_key(user))
        user.email_list_ids = [i for i in user.email_list_ids if i != lst["id"]]
        if channel_unsubscribe:
            channels = set(user.subscriptions.get("unsubscribedChannelIds", []))
            user.subscriptions["unsubscribedChannelIds"] = sorted(channels | {1})
        success += 1
    return Answer(200, bulk_answer(success, failed, [], []))


def _lists_delete(project: Project, call: Call) -> Answer:
    list_id = int_param(call.params["listId"], "listId")
    if list_id not in project.lists:
        raise ApiError(400, "BadParams", f"Invalid listId: {list_id}")
    del project.lists[list_id]
    for user in project.users():
        if list_id in user.email_list_ids:
            user.email_list_ids.remove(list_id)
    return Answer(200, envelope(f"Deleted list {list_id}"))


def _lists_size(project: Project, call: Call) -> Answer:
    lst = known_list(project, int_param(call.params["listId"], "listId"))
    return Answer(200, str(len(lst["subscribers"])), content_type="text/plain")


def _lists_get_users(project: Project, call: Call) -> Answer:
    raw = call.query_value("listId")
    if raw is None:
        raise ApiError(400, "BadParams", "Missing required query parameter: listId")
    lst = known_list(project, int_param(raw, "listId"))
    return Answer(200, "\n".join(sorted(lst["subscribers"])), content_type="text/plain")


#: Handlers by endpoint key.
HANDLERS = {
    "GET /api/lists": _lists_get,
    "POST /api/lists": _lists_create,
    "POST /api/lists/subscribe": _lists_subscribe,
    "POST /api/lists/unsubscribe": _lists_unsubscribe,
    "GET /api/lists/getUsers": _lists_get_users,
    "GET /api/lists/{listId}/size": _lists_size,
    "DELETE /api/lists/{listId}": _lists_delete,
}
