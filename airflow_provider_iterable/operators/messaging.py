"""Operators that send messages and start journeys in Iterable.

Sends and journey triggers are not idempotent: repeated, they message the user twice. The hook
therefore never repeats them once the request may have reached Iterable, and these operators turn
an unknown outcome into ``AirflowFailException`` so a task retry does not resend either. Check
Iterable (or the ``smsSend``/``emailSend`` webhooks) before clearing such a task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Context

from airflow_provider_iterable.operators._base import (
    IterableBaseOperator,
    as_int,
    one_of,
    optional_bool,
    optional_datetime,
    optional_dict,
    optional_int,
)


class _IterableSendOperator(IterableBaseOperator):
    """Shared part of the SMS and e-mail sends."""

    template_fields: Sequence[str] = (
        "campaign_id",
        "recipient_email",
        "recipient_user_id",
        "data_fields",
        "send_at",
    )
    template_fields_renderers = {"data_fields": "json"}
    ui_color = "#f3e9fb"
    _medium = ""

    def __init__(
        self,
        *,
        campaign_id: int | str,
        recipient_email: str | None = None,
        recipient_user_id: str | None = None,
        data_fields: Mapping[str, Any] | None = None,
        send_at: Any = None,
        allow_repeat_marketing_sends: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.campaign_id = campaign_id
        self.recipient_email = recipient_email
        self.recipient_user_id = recipient_user_id
        self.data_fields = data_fields
        self.send_at = send_at
        self.allow_repeat_marketing_sends = allow_repeat_marketing_sends

    def _send_kwargs(self) -> dict[str, Any]:
        return {
            "campaign_id": as_int(self.campaign_id, "campaign_id"),
            **one_of(recipient_email=self.recipient_email, recipient_user_id=self.recipient_user_id),
            "data_fields": optional_dict(self.data_fields, "data_fields"),
            # The hook sends it as Iterable's "YYYY-MM-DD HH:MM:SS" in UTC.
            "send_at": optional_datetime(self.send_at, "send_at"),
            "allow_repeat_marketing_sends": optional_bool(
                self.allow_repeat_marketing_sends, "allow_repeat_marketing_sends"
            ),
        }


class IterableSendSmsOperator(_IterableSendOperator):
    """Send an SMS campaign to one user (``POST /api/sms/target``).

    Not repeated when its outcome is unknown (see the module notes): the task then fails instead
    of retrying, so the user never gets the message twice.

    .. seealso:: https://api.iterable.com/api/docs#SMS_target

    :param campaign_id: the SMS campaign (templated; a rendered ``"2001"`` is fine).
    :param recipient_email: the recipient's e-mail address (templated). Set this or
        ``recipient_user_id``, not both.
    :param recipient_user_id: the recipient's userId (templated).
    :param data_fields: fields merged into the template (templated).
    :param send_at: when to send: a datetime (naive means UTC) or an ISO-8601 string (templated);
        sent as ``YYYY-MM-DD HH:MM:SS`` in UTC. Default: now. Iterable sends at once when it is in
        the past.
    :param allow_repeat_marketing_sends: allow a marketing campaign to reach a user more than once
        (Iterable's default: ``True``).
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: Iterable's envelope.
    """

    def execute(self, context: Context) -> Any:
        """Send the SMS; return Iterable's envelope."""
        kwargs = self._send_kwargs()
        with self._iterable_errors("sending the SMS"):
            return self.hook.send_sms(**kwargs)


class IterableSendEmailOperator(_IterableSendOperator):
    """Send an e-mail campaign to one user (``POST /api/email/target``).

    Not repeated when its outcome is unknown (see the module notes).

    .. seealso:: https://api.iterable.com/api/docs#email_target

    :param campaign_id: the e-mail campaign (templated).
    :param recipient_email: the recipient's e-mail address (templated). Set this or
        ``recipient_user_id``, not both.
    :param recipient_user_id: the recipient's userId (templated).
    :param data_fields: fields merged into the template (templated).
    :param send_at: when to send (datetime or ISO-8601 string, naive means UTC; templated).
    :param allow_repeat_marketing_sends: allow a marketing campaign to reach a user more than once.
    :param metadata: data Iterable does not render but returns in the ``emailSend`` and later
        webhooks (templated), e.g. ``{"dag_run": "{{ run_id }}"}`` to match a webhook to its run.
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: Iterable's envelope.
    """

    template_fields: Sequence[str] = (*_IterableSendOperator.template_fields, "metadata")
    template_fields_renderers = {"data_fields": "json", "metadata": "json"}

    def __init__(self, *, metadata: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metadata = metadata

    def execute(self, context: Context) -> Any:
        """Send the e-mail; return Iterable's envelope."""
        kwargs = self._send_kwargs()
        metadata = optional_dict(self.metadata, "metadata")
        with self._iterable_errors("sending the e-mail"):
            return self.hook.send_email(**kwargs, metadata=metadata)


class IterableListChannelsOperator(IterableBaseOperator):
    """Return the project's message channels (``GET /api/channels``).

    .. seealso:: https://api.iterable.com/api/docs#channels_channels

    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: a list of ``{"id", "name", "channelType", "messageMedium"}`` dicts.
    """

    ui_color = "#f3e9fb"

    def execute(self, context: Context) -> list[dict[str, Any]]:
        """Fetch the channels."""
        with self._iterable_errors("fetching the channels"):
            return [dict(channel) for channel in self.hook.get_channels()]


class IterableTriggerJourneyOperator(IterableBaseOperator):
    """Start a journey for one user or every user of a list (``POST /api/workflows/triggerWorkflow``).

    Not repeated when its outcome is unknown (see the module notes). A list trigger runs
    asynchronously in Iterable, and the same list cannot be triggered again for the same journey
    until it finished.

    .. seealso:: https://api.iterable.com/api/docs#workflows_triggerWorkflow

    :param workflow_id: the journey's id, the number in the journey editor's URL (templated).
    :param email: a user's e-mail address (templated). Set exactly one of ``email``, ``user_id``
        or ``list_id``.
    :param user_id: a user's userId (templated).
    :param list_id: a list whose users all enter the journey (templated; an XCom works).
    :param data_fields: trigger data available to the journey (templated).
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: Iterable's envelope.
    """

    template_fields: Sequence[str] = ("workflow_id", "email", "user_id", "list_id", "data_fields")
    template_fields_renderers = {"data_fields": "json"}
    ui_color = "#f3e9fb"

    def __init__(
        self,
        *,
        workflow_id: int | str,
        email: str | None = None,
        user_id: str | None = None,
        list_id: int | str | None = None,
        data_fields: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.email = email
        self.user_id = user_id
        self.list_id = list_id
        self.data_fields = data_fields

    def execute(self, context: Context) -> Any:
        """Trigger the journey; return Iterable's envelope."""
        workflow_id = as_int(self.workflow_id, "workflow_id")
        list_id = optional_int(self.list_id, "list_id")
        # A journey starts for one user or for one list.
        target: dict[str, Any] = one_of(email=self.email, user_id=self.user_id, list_id=list_id)
        if "list_id" in target:
            target["list_id"] = list_id  # sent as the number it is
        data_fields = optional_dict(self.data_fields, "data_fields")
        with self._iterable_errors("triggering the journey"):
            return self.hook.trigger_workflow(workflow_id=workflow_id, **target, data_fields=data_fields)
