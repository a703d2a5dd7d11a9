"""Classify a parsed delivery into a queue event and derive its dedupe key.

Iterable sends no delivery id, so a retry is recognised by content: the SHA-256 of the
connection id, the kind, the journey id, the query string and the body, each in canonical JSON
(sorted keys, no insignificant spaces). A body re-serialised with another key order or spacing
gets the same key; any change of value gets another.

The index columns (event name, journey and campaign ids, e-mail, user id) take a payload's
value only where the column can hold it: a 300-character ``eventName``, a list as ``email`` or
``10**30`` as ``campaignId`` leave that column empty, and the payload keeps the value whole.
Only a journey webhook without a usable journey id is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from airflow_provider_iterable._values import id_like
from airflow_provider_iterable.event_queue.events import EVENT_NAME_MAX_CHARS, NewEvent, storable_text
from airflow_provider_iterable.exceptions import WebhookRejectedError


def _first(value: Any) -> Any:
    # A repeated form or query key is a list; its first value names the thing.
    return value[0] if isinstance(value, list) and value else value


def _text(value: Any, *, limit: int | None = None, numbers: bool = False) -> str | None:
    # Whatever a sender put there, a value its column cannot hold leaves the column empty: the
    # payload keeps it whole, and a sensor's match still finds it there.
    value = _first(value)
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a userId may be numeric
    return value if storable_text(value, limit) else None


def canonical_json(value: Any) -> str:
    """Return ``value`` as canonical JSON: sorted keys, compact separators, UTF-8 text.

    :param value: A JSON-compatible value.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dedupe_key(
    conn_id: str, kind: str, workflow_id: int | None, query: Mapping[str, Any], payload: Any
) -> str:
    """Return the hex SHA-256 that identifies a delivery's content.

    :param conn_id: The connection id from the URL.
    :param kind: ``"system"`` or ``"journey"``.
    :param workflow_id: The journey id (``None`` for system webhooks).
    :param query: The parsed query string.
    :param payload: The parsed body.
    """
    material = canonical_json([conn_id, kind, workflow_id, query, payload])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def journey_id(path_id: str | None, query: Mapping[str, Any], payload: Mapping[str, Any]) -> int:
    """Return the journey (workflow) id of a journey webhook.

    Taken from the URL path, else the ``workflowId`` query parameter, else the payload's
    ``workflowId`` field.

    :param path_id: The id from the URL path (already checked to be digits), or ``None``.
    :param query: The parsed query string.
    :param payload: The parsed body.
    :raises WebhookRejectedError: 404 when the query's id is not a number (the URL names no journey),
        400 when no id is given or the payload's is not a number.
    """
    if path_id is not None:
        number = id_like(path_id)
        if number is None:
            raise WebhookRejectedError(404, "journey id must be a number")
        return number
    if "workflowId" in query:
        number = id_like(_first(query["workflowId"]))
        if number is None:
            raise WebhookRejectedError(404, "journey id must be a number")
        return number
    if "workflowId" in payload:
        number = id_like(_first(payload["workflowId"]))
        if number is None:
            raise WebhookRejectedError(400, "payload workflowId must be a number")
        return number
    raise WebhookRejectedError(
        400, "no journey id: put it in the URL, a workflowId query parameter or the payload"
    )


def classify(
    *,
    conn_id: str,
    kind: str,
    payload: dict[str, Any],
    query: dict[str, Any],
    path_workflow_id: str | None = None,
) -> NewEvent:
    """Build the :class:`~airflow_provider_iterable.event_queue.NewEvent` for a parsed delivery.

    :param conn_id: The connection id from the URL.
    :param kind: ``"system"`` or ``"journey"``.
    :param payload: The parsed body (or, for a body-less journey call, its query parameters).
    :param query: The parsed query string.
    :param path_workflow_id: The journey id from the URL path, if the route has one.
    :raises WebhookRejectedError: When a journey id is missing or malformed.
    """
    data_fields = payload.get("dataFields")
    if not isinstance(data_fields, dict):
        data_fields = {}
    if kind == "journey":
        workflow_id: int | None = journey_id(path_workflow_id, query, payload)
    else:
        workflow_id = id_like(data_fields.get("workflowId"))
    campaign_id = id_like(_first(data_fields.get("campaignId")))
    if campaign_id is None:
        campaign_id = id_like(_first(query.get("campaignId")))
    user_id = _text(payload.get("userId"), numbers=True)
    if user_id is None:
        user_id = _text(data_fields.get("userId"), numbers=True)
    return NewEvent(
        conn_id=conn_id,
        kind=kind,
        payload=payload,
        query=query,
        event_name=_text(payload.get("eventName"), limit=EVENT_NAME_MAX_CHARS),
        workflow_id=workflow_id,
        campaign_id=campaign_id,
        email=_text(payload.get("email")),
        user_id=user_id,
        dedupe_key=dedupe_key(conn_id, kind, workflow_id, query, payload),
    )
