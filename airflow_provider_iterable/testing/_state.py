"""The simulated project as a test sees it: read its state, seed it, without a request.

:class:`ProjectState` is the part of :class:`~airflow_provider_iterable.testing.IterableSimulator`
that reads and seeds its project: every value it returns is a copy, so a test cannot change the
simulator's state by accident.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.testing._answers import Call
from airflow_provider_iterable.testing._handlers import dispatch
from airflow_provider_iterable.testing._project import Project


class ProjectState:
    """Read and seed the simulated project (mixed into ``IterableSimulator``)."""

    _project: Project

    def get_user(self, email: str | None = None, user_id: str | None = None) -> dict[str, Any] | None:
        """Return a user as ``GET /api/users/getByEmail`` would (``{"email", "userId", "dataFields"}``).

        :param email: the user's e-mail address; exactly one of ``email`` and ``user_id``.
        :param user_id: the user's userId.
        :return: the user, or ``None`` when there is none.
        """
        if (email is None) == (user_id is None):
            raise IterableConfigError("pass exactly one of email or user_id")
        with self._project.lock:
            user = self._project.find_user(email, user_id)
            return None if user is None else self._project.user_view(user)

    def add_user(
        self,
        *,
        email: str | None = None,
        user_id: str | None = None,
        data_fields: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create or update a user as ``POST /api/users/update`` would, without a request; return it.

        :param email: the user's e-mail address.
        :param user_id: the user's userId.
        :param data_fields: profile fields merged into the user.
        """
        record: dict[str, Any] = {"dataFields": data_fields or {}}
        if email is not None:
            record["email"] = email
        if user_id is not None:
            record["userId"] = user_id
        answer = dispatch(self._project, "POST /api/users/update", Call({}, {}, record))
        if answer.status != 200:
            raise IterableConfigError(f"cannot add user: {answer.body['msg']}")
        user = self.get_user(email=email) if email is not None else self.get_user(user_id=user_id)
        assert user is not None
        return user

    def forget_user(self, *, email: str | None = None, user_id: str | None = None) -> None:
        """GDPR-forget a user: it is deleted, and later writes for it fail with ``ForgottenUserError``.

        :param email: the user's e-mail address.
        :param user_id: the user's userId.
        """
        if email is None and user_id is None:
            raise IterableConfigError("pass email or user_id")
        self._project.forget(email, user_id)

    @property
    def lists(self) -> dict[int, dict[str, Any]]:
        """Lists by id: ``{"id", "name", "description", "createdAt", "listType", "subscribers"}`` (a copy)."""
        with self._project.lock:
            return copy.deepcopy(self._project.lists)

    def add_list(self, name: str, description: str | None = None) -> int:
        """Create a static list as ``POST /api/lists`` would; return its id.

        :param name: the list's name.
        :param description: the list's description.
        """
        return self._project.add_list(name, description)

    def list_members(self, list_id: int) -> set[str]:
        """Return the members of a list: e-mails (userIds for users without an e-mail).

        :param list_id: the list's id.
        """
        with self._project.lock:
            if list_id not in self._project.lists:
                raise KeyError(f"no list with id {list_id}")
            return set(self._project.lists[list_id]["subscribers"])

    @property
    def events(self) -> list[dict[str, Any]]:
        """Tracked events in order, each with its ``id`` (a copy)."""
        with self._project.lock:
            return copy.deepcopy(self._project.events)

    @property
    def sends(self) -> list[dict[str, Any]]:
        """E-mail and SMS sends in order: ``{"medium", "campaignId", "recipientEmail", ...}`` (a copy)."""
        with self._project.lock:
            return copy.deepcopy(self._project.sends)

    @property
    def workflow_triggers(self) -> list[dict[str, Any]]:
        """Journey triggers in order: ``{"workflowId", "email", "userId", "listId", "dataFields"}``."""
        with self._project.lock:
            return copy.deepcopy(self._project.workflow_triggers)

    @property
    def campaigns(self) -> dict[int, dict[str, Any]]:
        """Campaigns by id (a copy); 1001 (Email) and 2001 (SMS) exist from the start."""
        with self._project.lock:
            return copy.deepcopy(self._project.campaigns)

    def add_campaign(self, campaign_id: int, medium: str = "Email", *, name: str | None = None) -> None:
        """Create a campaign that ``email/target`` (medium ``Email``) or ``sms/target`` (``SMS``) accepts.

        :param campaign_id: the campaign's id.
        :param medium: ``"Email"``, ``"SMS"`` or ``"Push"``.
        :param name: the campaign's name (default: derived from the id).
        """
        self._project.add_campaign(campaign_id, medium, name=name)

    def add_workflow(
        self,
        workflow_id: int,
        *,
        name: str | None = None,
        webhook_url: str | None = None,
        webhook_headers: Mapping[str, str] | None = None,
    ) -> None:
        """Create a journey that ``workflows/triggerWorkflow`` accepts (3001 exists from the start).

        :param workflow_id: the journey's id.
        :param name: the journey's name (default: derived from the id).
        :param webhook_headers: headers sent with the Call Webhook tile's requests.
        :param webhook_url: give the journey a Call Webhook tile POSTing here: each user the journey
            is triggered for is sent as ``{"email", "userId", "workflowId", "workflowName",
            "dataFields"}`` (``dataFields``: the trigger's), with ``webhook_headers``.
        """
        self._project.add_workflow(
            workflow_id, name=name, webhook_url=webhook_url, webhook_headers=dict(webhook_headers or {})
        )

    def disallow_event_name(self, event_name: str) -> None:
        """Refuse events of this name, as a project with a restricted event list does.

        :param event_name: the event name to refuse.
        """
        with self._project.lock:
            self._project.disallowed_event_names.add(event_name)
