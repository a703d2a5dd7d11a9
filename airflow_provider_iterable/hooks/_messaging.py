"""Messaging: send e-mail and SMS campaigns to one user, read channels, start journeys."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow_provider_iterable.hooks._arguments import as_dict, require_identity
from airflow_provider_iterable.hooks._base import IterableHookBase, endpoint
from airflow_provider_iterable.hooks._encoding import compact
from airflow_provider_iterable.hooks._encoding import send_at as send_at_text

__all__ = ["MessagingApi"]


class MessagingApi(IterableHookBase):
    """The messaging endpoints of :class:`~airflow_provider_iterable.hooks.iterable.IterableHook`.

    E-mail and SMS sends to one user, the project's channels, and journey (workflow) triggers.
    """

    @endpoint("POST /api/sms/target")
    def send_sms(
        self,
        *,
        campaign_id: int,
        recipient_email: str | None = None,
        recipient_user_id: str | None = None,
        data_fields: Mapping[str, Any] | None = None,
        send_at: datetime | str | None = None,
        allow_repeat_marketing_sends: bool | None = None,
    ) -> dict[str, Any]:
        """Send an SMS campaign to one user (``POST /api/sms/target``).

        Never retried after a read timeout or 5xx: a repeat could send a second SMS.

        :param campaign_id: the SMS campaign's id.
        :param recipient_email: the user's e-mail address; this or ``recipient_user_id`` is required.
        :param recipient_user_id: the user's userId.
        :param data_fields: fields merged into the template.
        :param send_at: when to send: a datetime (naive means UTC) or a date-time string; sent as
            ``"YYYY-MM-DD HH:MM:SS"`` UTC.
        :param allow_repeat_marketing_sends: allow sending a marketing message again to this user.
        :return: Iterable's envelope.

        .. seealso:: https://api.iterable.com/api/docs#SMS_target
        """
        return self._send_target(
            "POST /api/sms/target",
            "send_sms",
            campaign_id=campaign_id,
            recipient_email=recipient_email,
            recipient_user_id=recipient_user_id,
            data_fields=data_fields,
            send_at=send_at,
            allow_repeat_marketing_sends=allow_repeat_marketing_sends,
        )

    @endpoint("POST /api/email/target")
    def send_email(
        self,
        *,
        campaign_id: int,
        recipient_email: str | None = None,
        recipient_user_id: str | None = None,
        data_fields: Mapping[str, Any] | None = None,
        send_at: datetime | str | None = None,
        allow_repeat_marketing_sends: bool | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send an e-mail campaign to one user (``POST /api/email/target``).

        Never retried after a read timeout or 5xx: a repeat could send a second e-mail.

        :param campaign_id: the e-mail campaign's id.
        :param recipient_email: the user's e-mail address; this or ``recipient_user_id`` is required.
        :param recipient_user_id: the user's userId.
        :param data_fields: fields merged into the template.
        :param send_at: when to send: a datetime (naive means UTC) or a date-time string; sent as
            ``"YYYY-MM-DD HH:MM:SS"`` UTC.
        :param allow_repeat_marketing_sends: allow sending a marketing message again to this user.
        :param metadata: data echoed back in the send's system webhooks, not used for rendering.
        :return: Iterable's envelope.

        .. seealso:: https://api.iterable.com/api/docs#email_target
        """
        return self._send_target(
            "POST /api/email/target",
            "send_email",
            campaign_id=campaign_id,
            recipient_email=recipient_email,
            recipient_user_id=recipient_user_id,
            data_fields=data_fields,
            send_at=send_at,
            allow_repeat_marketing_sends=allow_repeat_marketing_sends,
            metadata=metadata,
        )

    def _send_target(
        self,
        endpoint: str,
        method_name: str,
        *,
        campaign_id: int,
        recipient_email: str | None,
        recipient_user_id: str | None,
        data_fields: Mapping[str, Any] | None,
        send_at: datetime | str | None,
        allow_repeat_marketing_sends: bool | None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        # sms/target and email/target take the same body (e-mail adds ``metadata``).
        require_identity(method_name, recipient_email=recipient_email, recipient_user_id=recipient_user_id)
        body = compact(
            {
                "campaignId": campaign_id,
                "recipientEmail": recipient_email,
                "recipientUserId": recipient_user_id,
                "dataFields": data_fields,
                "sendAt": send_at_text(send_at) if send_at is not None else None,
                "allowRepeatMarketingSends": allow_repeat_marketing_sends,
                "metadata": metadata,
            }
        )
        return as_dict(self._call(endpoint, body=body))

    @endpoint("GET /api/channels")
    def get_channels(self) -> list[dict[str, Any]]:
        """Return the project's channels (``GET /api/channels``).

        :return: ``[{"id", "name", "channelType", "messageMedium"}, ...]``.

        .. seealso:: https://api.iterable.com/api/docs#channels_channels
        """
        answer = as_dict(self._call("GET /api/channels"))
        return list(answer.get("channels") or [])

    @endpoint("POST /api/workflows/triggerWorkflow")
    def trigger_workflow(
        self,
        *,
        workflow_id: int,
        email: str | None = None,
        user_id: str | None = None,
        list_id: int | None = None,
        data_fields: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a journey for a user or a list (``POST /api/workflows/triggerWorkflow``).

        Never retried after a read timeout or 5xx: a repeat could start the journey twice.

        :param workflow_id: the journey's id (the number in the journey editor's URL).
        :param email: the user's e-mail address; ``email``, ``user_id`` or ``list_id`` is required.
        :param user_id: the user's userId.
        :param list_id: start the journey for every user on this list.
        :param data_fields: trigger data available to the journey.
        :return: Iterable's envelope.

        .. seealso:: https://api.iterable.com/api/docs#workflows_triggerWorkflow
        """
        require_identity("trigger_workflow", email=email, user_id=user_id, list_id=list_id)
        body = compact(
            {
                "workflowId": workflow_id,
                "email": email,
                "userId": user_id,
                "listId": list_id,
                "dataFields": data_fields,
            }
        )
        return as_dict(self._call("POST /api/workflows/triggerWorkflow", body=body))
