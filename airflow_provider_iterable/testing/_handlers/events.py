"""Handlers of the event actions: track one event, track events in bulk."""

from __future__ import annotations

import time
import uuid
from typing import Any

from airflow_provider_iterable.testing._answers import (
    Answer,
    ApiError,
    Call,
    ItemError,
    bulk_answer,
    empty_failures,
    envelope,
)
from airflow_provider_iterable.testing._field_types import FieldTypeMismatch, FieldTypes
from airflow_provider_iterable.testing._project import Project

#: Longest event ``id`` Iterable accepts, in UTF-8 bytes.
EVENT_ID_MAX_BYTES = 512


def _track(project: Project, record: dict[str, Any]) -> str:
    """Store one event (or update the one with the same id); return its id."""
    event_id = record.get("id")
    if event_id is not None and len(event_id.encode()) > EVENT_ID_MAX_BYTES:
        raise ItemError(
            "invalidEmails" if record.get("email") is not None else "invalidUserIds",
            str(record.get("email") or record.get("userId")),
            400,
            "BadParams",
            f"Event id is longer than {EVENT_ID_MAX_BYTES} bytes",
        )
    user, ident, suffix = project.resolve(record.get("email"), record.get("userId"))
    assert user is not None
    name = record["eventName"]
    types = project.event_fields.setdefault(name, FieldTypes())
    allow_new = record.get("createNewFields") is not False
    try:
        data, flat, _, _ = types.check(record.get("dataFields") or {}, allow_new)
    except FieldTypeMismatch as exc:
        raise ItemError(
            f"invalidData{suffix}",
            ident,
            400,
            "RequestFieldsTypesMismatched",
            f"Field types of event {name!r} do not match: {exc}",
        ) from None
    types.register(flat)
    event_id = event_id if event_id is not None else uuid.uuid4().hex
    event: dict[str, Any] = {
        "id": event_id,
        "eventName": name,
        "email": user.email,
        "userId": user.user_id,
        "createdAt": record.get("createdAt", int(time.time())),
        "dataFields": data,
    }
    for key in ("campaignId", "templateId"):
        if key in record:
            event[key] = record[key]
    project.record_event(event)
    return event_id


def _events_track(project: Project, call: Call) -> Answer:
    name = call.body["eventName"]
    if name in project.disallowed_event_names:
        raise ApiError(400, "BadParams", f"Event name {name!r} is not allowed in this project")
    try:
        event_id = _track(project, call.body)
    except ItemError as exc:
        raise exc.api_error() from None
    return Answer(200, envelope(f"Event with id: {event_id} tracked.", params={"id": event_id}))


def _events_track_bulk(project: Project, call: Call) -> Answer:
    failed = empty_failures()
    disallowed: set[str] = set()
    success = 0
    for record in call.body["events"]:
        name = record["eventName"]
        if name in project.disallowed_event_names:
            disallowed.add(name)
            continue
        try:
            _track(project, record)
        except ItemError as exc:
            failed[exc.key].append(exc.value)
            continue
        success += 1
    answer = bulk_answer(success, failed, [], [])
    answer["failCount"] += sum(1 for r in call.body["events"] if r["eventName"] in disallowed)
    answer["disallowedEventNames"] = sorted(disallowed)
    return Answer(200, answer)


#: Handlers by endpoint key.
HANDLERS = {
    "POST /api/events/track": _events_track,
    "POST /api/events/trackBulk": _events_track_bulk,
}
