"""Handlers of the messaging actions: e-mail and SMS sends, journey triggers.

Each send fires a system webhook (``emailSend``, ``smsSend``) and each trigger of a journey with
a Call Webhook tile posts its entrants; the HTTP layer delivers them after the answer.
"""

from __future__ import annotations

import copy
import re
import time
import uuid
from typing import Any

from airflow_provider_iterable.testing._answers import (
    Answer,
    ApiError,
    Call,
    ItemError,
    envelope,
    iterable_time,
)
from airflow_provider_iterable.testing._handlers.lists import known_list
from airflow_provider_iterable.testing._project import Project
from airflow_provider_iterable.testing._webhooks import build_webhook

_SEND_AT_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def _send(project: Project, call: Call, medium: str) -> Answer:
    body = call.body
    campaign_id = body["campaignId"]
    campaign = project.campaigns.get(campaign_id)
    if campaign is None:
        raise ApiError(400, "BadParams", f"Invalid campaignId: {campaign_id} does not exist", None)
    if campaign["messageMedium"] != medium:
        raise ApiError(
            400,
            "BadParams",
            f"Campaign {campaign_id} is a {campaign['messageMedium']} campaign, not {medium}",
        )
    email, user_id = body.get("recipientEmail"), body.get("recipientUserId")
    send_at = body.get("sendAt")
    if send_at is not None and not _SEND_AT_RE.match(send_at):
        raise ApiError(400, "BadParams", f"sendAt must be 'YYYY-MM-DD HH:MM:SS' (UTC), got {send_at!r}")
    try:
        user, _, _ = project.resolve(email, user_id, create=user_id is None, email_field="recipientEmail")
    except ItemError as exc:
        raise exc.api_error() from None
    if user is None:
        raise ApiError(400, "UnknownUserIdError", f"No user with userId {user_id}")
    message_id = uuid.uuid4().hex
    now = time.time()
    send = {
        "medium": medium,
        "campaignId": campaign_id,
        "recipientEmail": user.email,
        "recipientUserId": user.user_id,
        "dataFields": copy.deepcopy(body.get("dataFields") or {}),
        "sendAt": send_at,
        "allowRepeatMarketingSends": body.get("allowRepeatMarketingSends"),
        "messageId": message_id,
        "sentAt": now,
    }
    if medium == "Email":
        send["metadata"] = copy.deepcopy(body.get("metadata") or {})
    project.sends.append(send)
    data_fields: dict[str, Any] = {
        "campaignId": campaign_id,
        "templateId": campaign["templateId"],
        "messageId": message_id,
        "createdAt": iterable_time(now),
        "workflowId": campaign["workflowId"],
        "workflowName": project.workflows.get(campaign["workflowId"], {}).get("name"),
        "channelId": campaign["channelId"],
        "messageTypeId": campaign["messageTypeId"],
        "campaignName": campaign["name"],
    }
    if user.email is not None:
        data_fields["email"] = user.email
    if medium == "Email":
        if body.get("dataFields"):
            data_fields["transactionalData"] = copy.deepcopy(body["dataFields"])
        # Iterable echoes a send's metadata back in the webhooks about it.
        data_fields.update(copy.deepcopy(body.get("metadata") or {}))
    else:
        phone = user.data_fields.get("phoneNumber")
        if phone is not None:
            data_fields["toPhoneNumber"] = phone
    event = "emailSend" if medium == "Email" else "smsSend"
    webhook = build_webhook(
        event, email=project.email_of(user), user_id=user.user_id, data_fields=data_fields
    )
    return Answer(
        200, envelope(f"{medium} send queued", params={"messageId": message_id}), webhooks=[webhook]
    )


def _email_target(project: Project, call: Call) -> Answer:
    return _send(project, call, "Email")


def _sms_target(project: Project, call: Call) -> Answer:
    return _send(project, call, "SMS")


def _trigger_workflow(project: Project, call: Call) -> Answer:
    body = call.body
    workflow_id = body["workflowId"]
    if workflow_id not in project.workflows:
        raise ApiError(400, "BadParams", f"Invalid workflowId: {workflow_id} does not exist")
    email, user_id, list_id = body.get("email"), body.get("userId"), body.get("listId")
    if list_id is not None:
        known_list(project, list_id)
    elif email is None and user_id is None:
        raise ApiError(400, "BadParams", "One of email, userId or listId must be provided")
    user = None
    if list_id is None:
        try:
            user, _, _ = project.resolve(email, user_id)
        except ItemError as exc:
            raise exc.api_error() from None
        entrants = [user]
    else:
        members = project.lists[list_id]["subscribers"]
        entrants = [project.find_user(email=m) or project.find_user(user_id=m) for m in sorted(members)]
    trigger = {
        "workflowId": workflow_id,
        "email": user.email if user is not None else None,
        "userId": user.user_id if user is not None else None,
        "listId": list_id,
        "dataFields": copy.deepcopy(body.get("dataFields") or {}),
        "triggeredAt": time.time(),
    }
    project.workflow_triggers.append(trigger)
    workflow = project.workflows[workflow_id]
    webhooks = []
    if workflow["webhookUrl"]:
        # The journey's Call Webhook tile: each user entering it is POSTed with the trigger data.
        for entrant in entrants:
            if entrant is None:
                continue
            hook: dict[str, Any] = {
                "email": project.email_of(entrant),
                "workflowId": workflow_id,
                "workflowName": workflow["name"],
                "dataFields": copy.deepcopy(trigger["dataFields"]),
            }
            if entrant.user_id is not None:
                hook["userId"] = entrant.user_id
            webhooks.append(hook)
    return Answer(
        200,
        envelope(f"Triggered workflow {workflow_id}"),
        webhooks=webhooks,
        webhook_url=workflow["webhookUrl"],
        webhook_headers=workflow["webhookHeaders"],
    )


#: Handlers by endpoint key.
HANDLERS = {
    "POST /api/email/target": _email_target,
    "POST /api/sms/target": _sms_target,
    "POST /api/workflows/triggerWorkflow": _trigger_workflow,
}
