"""State of one simulated Iterable project: users, lists, campaigns, journeys, events, sends.

Handlers (:mod:`._handlers`) read and change it under :attr:`Project.lock`; the user writes
(:meth:`Project.resolve`, :meth:`Project.upsert`) carry Iterable's identity rules, which several
actions share.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_iterable._values import whole_number
from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.testing._answers import ItemError, profile_time
from airflow_provider_iterable.testing._field_types import FieldTypeMismatch, FieldTypes, merge_fields
from airflow_provider_iterable.testing._validation import is_valid_email, is_valid_user_id


@dataclass
class User:
    """One user profile: identifiers, ``dataFields``, list memberships and subscriptions."""

    email: str | None
    user_id: str | None
    data_fields: dict[str, Any]
    signup: float
    updated: float
    email_list_ids: list[int] = field(default_factory=list)
    subscriptions: dict[str, list[int]] = field(default_factory=dict)


def _placeholder_email(user_id: str) -> str:
    # Iterable gives a user known only by userId a placeholder address of this form.
    return hashlib.sha256(user_id.encode()).hexdigest()[:32] + "@placeholder.email"


class Project:
    """State of one simulated Iterable project. Every public method takes :attr:`lock`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._users: list[User | None] = []
        self._by_email: dict[str, int] = {}
        self._by_user_id: dict[str, int] = {}
        self.forgotten_emails: set[str] = set()
        self.forgotten_user_ids: set[str] = set()
        self.user_fields = FieldTypes()
        self.event_fields: dict[str, FieldTypes] = {}
        self.lists: dict[int, dict[str, Any]] = {}
        self._next_list_id = 5001
        self.events: list[dict[str, Any]] = []
        self._event_positions: dict[str, int] = {}
        self.sends: list[dict[str, Any]] = []
        self.workflow_triggers: list[dict[str, Any]] = []
        self.disallowed_event_names: set[str] = set()
        now_ms = int(time.time() * 1000)
        self.channels: list[dict[str, Any]] = [
            {"id": 1, "name": "Marketing Email", "channelType": "Marketing", "messageMedium": "Email"},
            {
                "id": 2,
                "name": "Transactional Email",
                "channelType": "Transactional",
                "messageMedium": "Email",
            },
            {"id": 3, "name": "Marketing SMS", "channelType": "Marketing", "messageMedium": "SMS"},
            {"id": 4, "name": "Push Marketing", "channelType": "Marketing", "messageMedium": "Push"},
        ]
        self.message_types: list[dict[str, Any]] = [
            {"id": 11, "name": "Newsletter", "channelId": 1, "subscriptionPolicy": "OptOut"},
            {"id": 12, "name": "Receipts", "channelId": 2, "subscriptionPolicy": "OptOut"},
            {"id": 13, "name": "SMS Promotions", "channelId": 3, "subscriptionPolicy": "OptIn"},
            {"id": 14, "name": "Push Alerts", "channelId": 4, "subscriptionPolicy": "OptOut"},
        ]
        for message_type in self.message_types:
            message_type.update(createdAt=now_ms, updatedAt=now_ms)
        self.campaigns: dict[int, dict[str, Any]] = {}
        self.workflows: dict[int, dict[str, Any]] = {}
        self.add_workflow(3001, name="Welcome journey")
        self.add_campaign(1001, "Email", name="Welcome email")
        self.add_campaign(2001, "SMS", name="Welcome SMS")

    # ----------------------------------------------------------------- seeding and inspection
    def add_campaign(
        self,
        campaign_id: int,
        medium: str = "Email",
        *,
        name: str | None = None,
        template_id: int | None = None,
        workflow_id: int | None = None,
    ) -> dict[str, Any]:
        """Create (or replace) a campaign; its channel and message type follow its medium."""
        mediums = {"email": "Email", "sms": "SMS", "push": "Push"}
        whole_number(campaign_id, "campaign_id", minimum=1)
        if not isinstance(medium, str) or medium.lower() not in mediums:
            raise IterableConfigError(f"medium must be one of Email, SMS, Push; got {medium!r}")
        medium = mediums[medium.lower()]
        channel = {"Email": 1, "SMS": 3, "Push": 4}[medium]
        message_type = {"Email": 11, "SMS": 13, "Push": 14}[medium]
        now_ms = int(time.time() * 1000)
        campaign = {
            "id": campaign_id,
            "name": name or f"{medium} campaign {campaign_id}",
            "type": "Triggered",
            "campaignState": "Running",
            "messageMedium": medium,
            "templateId": template_id if template_id is not None else campaign_id + 3000,
            "channelId": channel,
            "messageTypeId": message_type,
            "workflowId": workflow_id,
            "createdAt": now_ms,
            "updatedAt": now_ms,
            "createdByUserId": "simulator@example.com",
        }
        with self.lock:
            self.campaigns[campaign_id] = campaign
        return campaign

    def add_workflow(
        self,
        workflow_id: int,
        *,
        name: str | None = None,
        webhook_url: str | None = None,
        webhook_headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create (or replace) a journey, with a Call Webhook tile when ``webhook_url`` is given."""
        whole_number(workflow_id, "workflow_id", minimum=1)
        workflow = {
            "id": workflow_id,
            "name": name or f"Journey {workflow_id}",
            "enabled": True,
            "webhookUrl": webhook_url,
            "webhookHeaders": dict(webhook_headers or {}),
        }
        with self.lock:
            self.workflows[workflow_id] = workflow
        return workflow

    def add_list(self, name: str, description: str | None = None, list_type: str = "Standard") -> int:
        """Create a list with the next free id (from 5001); return the id."""
        with self.lock:
            list_id = self._next_list_id
            self._next_list_id += 1
            self.lists[list_id] = {
                "id": list_id,
                "name": name,
                "description": description,
                "createdAt": int(time.time() * 1000),
                "listType": list_type,
                "subscribers": set(),
            }
            return list_id

    def find_user(self, email: str | None = None, user_id: str | None = None) -> User | None:
        """Return the user with this e-mail (any case) or else this userId, or None."""
        with self.lock:
            index = None
            if email is not None:
                index = self._by_email.get(email.lower())
            elif user_id is not None:
                index = self._by_user_id.get(user_id)
            return None if index is None else self._users[index]

    def user_view(self, user: User) -> dict[str, Any]:
        """The user as ``users/getByEmail`` answers it (a copy)."""
        email = self.email_of(user)
        data = copy.deepcopy(user.data_fields)
        data["email"] = email
        if user.user_id is not None:
            data["userId"] = user.user_id
        data["signupDate"] = profile_time(user.signup)
        data["profileUpdatedAt"] = profile_time(user.updated)
        if user.email_list_ids:
            data["emailListIds"] = list(user.email_list_ids)
        for key, ids in user.subscriptions.items():
            data[key] = list(ids)
        view: dict[str, Any] = {"email": email, "dataFields": data}
        if user.user_id is not None:
            view["userId"] = user.user_id
        return view

    def email_of(self, user: User) -> str:
        """The user's e-mail, or the placeholder Iterable shows for a user known only by userId."""
        return user.email if user.email is not None else _placeholder_email(user.user_id or "")

    def member_key(self, user: User) -> str:
        """The key a list stores its member under: the e-mail, else the userId."""
        return user.email if user.email is not None else (user.user_id or "")

    def forget(self, email: str | None, user_id: str | None) -> None:
        """GDPR-forget a user: delete it and refuse later writes for its identifiers."""
        with self.lock:
            user = self.find_user(email, user_id)
            if email is not None:
                self.forgotten_emails.add(email.lower())
            if user_id is not None:
                self.forgotten_user_ids.add(user_id)
            if user is not None:
                if user.email is not None:
                    self.forgotten_emails.add(user.email.lower())
                if user.user_id is not None:
                    self.forgotten_user_ids.add(user.user_id)
                self.delete_user(user)

    # ------------------------------------------------------------------------ user writes
    def _new_user(self, email: str | None, user_id: str | None) -> User:
        now = time.time()
        user = User(email=email, user_id=user_id, data_fields={}, signup=now, updated=now)
        index = len(self._users)
        self._users.append(user)
        if email is not None:
            self._by_email[email.lower()] = index
        if user_id is not None:
            self._by_user_id[user_id] = index
        return user

    def _index_of(self, user: User) -> int:
        if user.email is not None:
            return self._by_email[user.email.lower()]
        return self._by_user_id[user.user_id or ""]

    def users(self) -> Iterator[User]:
        """Yield every user that exists, in creation order."""
        return (user for user in self._users if user is not None)

    def delete_user(self, user: User) -> None:
        """Delete ``user`` and take it off every list."""
        index = self._index_of(user)
        self._users[index] = None
        if user.email is not None:
            self._by_email.pop(user.email.lower(), None)
        if user.user_id is not None:
            self._by_user_id.pop(user.user_id, None)
        key = self.member_key(user)
        for lst in self.lists.values():
            lst["subscribers"].discard(key)

    def resolve(
        self, email: Any, user_id: Any, *, create: bool = True, email_field: str = "email"
    ) -> tuple[User | None, str, str]:
        """Find (or create) the user a record names.

        :return: the user (None when absent and not ``create``), and the identifier and the
            ``failedUpdates`` suffix ("Emails"/"UserIds") to report a failure under.
        :raises ItemError: for a bad or forgotten identifier or an email/userId conflict.
        """
        if email is None and user_id is None:
            raise ItemError(
                "invalidEmails",
                "",
                400,
                "BadParams",
                f"Either {email_field} or userId must be provided",
            )
        if email is not None:
            if not is_valid_email(email):
                raise ItemError(
                    "invalidEmails", str(email), 400, "InvalidEmailAddressError", f"Invalid email: {email}"
                )
            if email.lower() in self.forgotten_emails:
                raise ItemError(
                    "forgottenEmails", email, 409, "ForgottenUserError", f"User {email} has been forgotten"
                )
        if user_id is not None:
            if not is_valid_user_id(user_id):
                raise ItemError(
                    "invalidUserIds", str(user_id), 400, "InvalidUserIdError", f"Invalid userId: {user_id!r}"
                )
            if user_id in self.forgotten_user_ids:
                raise ItemError(
                    "forgottenUserIds",
                    user_id,
                    409,
                    "ForgottenUserError",
                    f"User {user_id} has been forgotten",
                )
        if email is not None:
            user = self.find_user(email=email)
            owner = self.find_user(user_id=user_id) if user_id is not None else None
            if owner is not None and owner is not user and (user is not None or owner.email is not None):
                raise ItemError(
                    "conflictUserIds",
                    user_id,
                    409,
                    "UserIdAlreadyExists",
                    f"userId {user_id} already belongs to another user",
                )
            if user is None and owner is not None:
                # A user known only by userId gets the e-mail address now supplied.
                owner.email = email
                self._by_email[email.lower()] = self._index_of_user_id(owner)
                return owner, email, "Emails"
            if user is None:
                if not create:
                    return None, email, "Emails"
                user = self._new_user(email, user_id)
            elif user_id is not None and user.user_id != user_id:
                if user.user_id is not None:
                    self._by_user_id.pop(user.user_id, None)
                user.user_id = user_id
                self._by_user_id[user_id] = self._by_email[email.lower()]
            return user, email, "Emails"
        user = self.find_user(user_id=user_id)
        if user is None and create:
            # The simulator behaves like a hybrid project: an unknown userId creates the user.
            user = self._new_user(None, user_id)
        return user, user_id, "UserIds"

    def _index_of_user_id(self, user: User) -> int:
        return self._by_user_id[user.user_id or ""]

    def upsert(self, record: dict[str, Any], allow_new: bool) -> tuple[list[str], list[str]]:
        """Apply one users/update record; return (created fields, filtered-out fields)."""
        email, user_id = record.get("email"), record.get("userId")
        data_fields = record.get("dataFields") or {}
        # Identifiers first (without creating anyone), so a bad e-mail is reported as such.
        _, ident, suffix = self.resolve(email, user_id, create=False)
        try:
            data, flat, created, filtered = self.user_fields.check(data_fields, allow_new)
        except FieldTypeMismatch as exc:
            raise ItemError(
                f"invalidData{suffix}",
                str(ident),
                400,
                "RequestFieldsTypesMismatched",
                f"Field types do not match the project's: {exc}",
            ) from None
        user, _, _ = self.resolve(email, user_id)
        assert user is not None
        self.user_fields.register(flat)
        user.data_fields = merge_fields(user.data_fields, data, bool(record.get("mergeNestedObjects")))
        user.updated = time.time()
        return created, filtered

    # ----------------------------------------------------------------------------- events
    def record_event(self, event: dict[str, Any]) -> None:
        """Store a tracked event; one with the ``id`` of a stored event replaces it."""
        position = self._event_positions.get(event["id"])
        if position is None:
            self._event_positions[event["id"]] = len(self.events)
            self.events.append(event)
        else:
            # Iterable updates the event with the same id instead of storing a second one.
            self.events[position] = event
