"""The simulated Iterable project: its state and one handler per API action.

Everything here runs under :attr:`Project.lock`; the HTTP layer (``simulator.py``) parses the
request, checks the key and the rate limit, and calls :meth:`Project.handle`.
"""

from __future__ import annotations

import copy
import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import jsonschema

from airflow_provider_iterable.testing._spec import BODY_DEFINITIONS, DEFINITIONS

#: Keys of ``failedUpdates`` in every bulk answer (Iterable omits none of them).
FAILED_UPDATE_KEYS: tuple[str, ...] = (
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
    "forgottenEmails",
    "forgottenUserIds",
    "conflictEmails",
    "conflictUserIds",
    "invalidDataEmails",
    "invalidDataUserIds",
)

#: Largest body Iterable accepts on ``users/bulkUpdate``.
BULK_UPDATE_MAX_BYTES = 4 * 1024 * 1024
#: Longest event ``id`` Iterable accepts, in UTF-8 bytes.
EVENT_ID_MAX_BYTES = 512

# Deliberately simple, like Iterable's own check: one @, no blanks, a dot in the domain.
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_SEND_AT_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@dataclass
class Answer:
    """What the HTTP layer sends back: a status, a JSON body (or text), and webhooks to fire."""

    status: int
    body: Any
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    content_type: str = "application/json"
    #: Where ``webhooks`` go when not to the system-webhook URL (a journey's Call Webhook tile).
    webhook_url: str | None = None
    webhook_headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """An Iterable error answer: ``{"msg", "code", "params"}`` with an HTTP status."""

    def __init__(self, status: int, code: str, msg: str, params: Any = None) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.params = params

    def answer(self) -> Answer:
        return Answer(self.status, envelope(self.msg, self.code, self.params))


class _ItemError(Exception):
    """One record of a bulk call failed; ``key`` is the ``failedUpdates`` list it belongs in."""

    def __init__(self, key: str, value: str, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.key = key
        self.value = value
        self.status = status
        self.code = code
        self.msg = msg

    def api_error(self) -> ApiError:
        return ApiError(self.status, self.code, self.msg)


@dataclass
class Call:
    """One parsed request handed to a handler."""

    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


def envelope(msg: str, code: str = "Success", params: Any = None) -> dict[str, Any]:
    """Build Iterable's standard answer body."""
    return {"msg": msg, "code": code, "params": params}


def iterable_time(ts: float | None = None) -> str:
    """Format a time as Iterable's webhooks do: ``"2015-04-24 21:35:02 +00:00"``."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S +00:00")


def _profile_time(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} +00:00"


def is_valid_email(value: Any) -> bool:
    """Return whether ``value`` is an e-mail address Iterable would accept."""
    return isinstance(value, str) and len(value) <= 254 and _EMAIL_RE.match(value) is not None


def is_valid_user_id(value: Any) -> bool:
    """Return whether ``value`` is a userId Iterable would accept (printable ASCII, no edge blanks)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 512
        and value.isascii()
        and value.isprintable()
        and value == value.strip()
    )


def _value_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        # Iterable types an array by its elements: a list of strings is a "string" field.
        for item in value:
            item_type = _value_type(item)
            if item_type is not None:
                return "nested" if item_type == "object" else item_type
    return None


def _flatten_types(data: dict[str, Any], prefix: str = "") -> dict[str, tuple[str, Any]]:
    """Map every (dotted) field path in ``data`` to its type and value."""
    out: dict[str, tuple[str, Any]] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        value_type = _value_type(value)
        if value_type is None:
            continue
        out[path] = (value_type, value)
        if isinstance(value, dict):
            out.update(_flatten_types(value, f"{path}."))
        elif value_type == "nested":
            for item in value:
                if isinstance(item, dict):
                    out.update(_flatten_types(item, f"{path}."))
    return out


def _compatible(known: str, incoming: str, value: Any) -> bool:
    if known == incoming:
        return True
    if known == "double" and incoming == "long":
        return True
    # 2.0 is how many JSON encoders write the integer 2.
    return known == "long" and incoming == "double" and isinstance(value, float) and value.is_integer()


def _merge(old: dict[str, Any], new: dict[str, Any], nested: bool) -> dict[str, Any]:
    merged = dict(old)
    for key, value in new.items():
        if nested and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value, nested=True)
        else:
            # The parsed request body belongs to this call alone: its values can be kept as they are.
            merged[key] = value
    return merged


class _FieldTypes:
    """The project's field schema: a field's type is fixed by its first value."""

    def __init__(self) -> None:
        self.types: dict[str, str] = {}

    def check(
        self, data: dict[str, Any], allow_new: bool
    ) -> tuple[dict[str, Any], dict[str, tuple[str, Any]], list[str], list[str]]:
        """Check ``data`` against the known types.

        :return: the data to store (unknown top-level fields dropped unless ``allow_new``), its
            flattened field types (for :meth:`register`), the fields it would create and the
            fields it filtered out.
        :raises ValueError: naming the fields whose type differs from the known one.
        """
        flat = _flatten_types(data)
        mismatched = [
            f"{path} (is {self.types[path]}, got {kind})"
            for path, (kind, value) in flat.items()
            if path in self.types and not _compatible(self.types[path], kind, value)
        ]
        if mismatched:
            raise ValueError("; ".join(mismatched))
        filtered: list[str] = []
        if not allow_new:
            known_roots = {path.split(".", 1)[0] for path in self.types}
            filtered = [key for key in data if key not in known_roots]
            if filtered:
                data = {k: v for k, v in data.items() if k not in filtered}
                flat = _flatten_types(data)
        created = [path for path in flat if path not in self.types]
        return data, flat, created, filtered

    def register(self, flat: dict[str, tuple[str, Any]]) -> None:
        for path, (kind, _) in flat.items():
            self.types.setdefault(path, kind)


@dataclass
class _User:
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


Handler = Callable[["Project", Call], Answer]


class Project:
    """State of one simulated Iterable project. Every public method takes :attr:`lock`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._users: list[_User | None] = []
        self._by_email: dict[str, int] = {}
        self._by_user_id: dict[str, int] = {}
        self.forgotten_emails: set[str] = set()
        self.forgotten_user_ids: set[str] = set()
        self.user_fields = _FieldTypes()
        self.event_fields: dict[str, _FieldTypes] = {}
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
        mediums = {"email": "Email", "sms": "SMS", "push": "Push"}
        if medium.lower() not in mediums:
            raise ValueError(f"medium must be one of Email, SMS, Push; got {medium!r}")
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

    def find_user(self, email: str | None = None, user_id: str | None = None) -> _User | None:
        with self.lock:
            index = None
            if email is not None:
                index = self._by_email.get(email.lower())
            elif user_id is not None:
                index = self._by_user_id.get(user_id)
            return None if index is None else self._users[index]

    def user_view(self, user: _User) -> dict[str, Any]:
        """The user as ``users/getByEmail`` answers it (a copy)."""
        email = self.email_of(user)
        data = copy.deepcopy(user.data_fields)
        data["email"] = email
        if user.user_id is not None:
            data["userId"] = user.user_id
        data["signupDate"] = _profile_time(user.signup)
        data["profileUpdatedAt"] = _profile_time(user.updated)
        if user.email_list_ids:
            data["emailListIds"] = list(user.email_list_ids)
        for key, ids in user.subscriptions.items():
            data[key] = list(ids)
        view: dict[str, Any] = {"email": email, "dataFields": data}
        if user.user_id is not None:
            view["userId"] = user.user_id
        return view

    def email_of(self, user: _User) -> str:
        """The user's e-mail, or the placeholder Iterable shows for a user known only by userId."""
        return user.email if user.email is not None else _placeholder_email(user.user_id or "")

    def member_key(self, user: _User) -> str:
        return user.email if user.email is not None else (user.user_id or "")

    def forget(self, email: str | None, user_id: str | None) -> None:
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
                self._delete(user)

    # ------------------------------------------------------------------------ user writes
    def _new_user(self, email: str | None, user_id: str | None) -> _User:
        now = time.time()
        user = _User(email=email, user_id=user_id, data_fields={}, signup=now, updated=now)
        index = len(self._users)
        self._users.append(user)
        if email is not None:
            self._by_email[email.lower()] = index
        if user_id is not None:
            self._by_user_id[user_id] = index
        return user

    def _index_of(self, user: _User) -> int:
        if user.email is not None:
            return self._by_email[user.email.lower()]
        return self._by_user_id[user.user_id or ""]

    def _delete(self, user: _User) -> None:
        index = self._index_of(user)
        self._users[index] = None
        if user.email is not None:
            self._by_email.pop(user.email.lower(), None)
        if user.user_id is not None:
            self._by_user_id.pop(user.user_id, None)
        key = self.member_key(user)
        for lst in self.lists.values():
            lst["subscribers"].discard(key)

    def _resolve(
        self, email: Any, user_id: Any, *, create: bool = True, email_field: str = "email"
    ) -> tuple[_User | None, str, str]:
        """Find (or create) the user a record names.

        :return: the user (None when absent and not ``create``), and the identifier and the
            ``failedUpdates`` suffix ("Emails"/"UserIds") to report a failure under.
        :raises _ItemError: for a bad or forgotten identifier or an email/userId conflict.
        """
        if email is None and user_id is None:
            raise _ItemError(
                "invalidEmails",
                "",
                400,
                "BadParams",
                f"Either {email_field} or userId must be provided",
            )
        if email is not None:
            if not is_valid_email(email):
                raise _ItemError(
                    "invalidEmails", str(email), 400, "InvalidEmailAddressError", f"Invalid email: {email}"
                )
            if email.lower() in self.forgotten_emails:
                raise _ItemError(
                    "forgottenEmails", email, 409, "ForgottenUserError", f"User {email} has been forgotten"
                )
        if user_id is not None:
            if not is_valid_user_id(user_id):
                raise _ItemError(
                    "invalidUserIds", str(user_id), 400, "InvalidUserIdError", f"Invalid userId: {user_id!r}"
                )
            if user_id in self.forgotten_user_ids:
                raise _ItemError(
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
                raise _ItemError(
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

    def _index_of_user_id(self, user: _User) -> int:
        return self._by_user_id[user.user_id or ""]

    def _upsert(self, record: dict[str, Any], allow_new: bool) -> tuple[list[str], list[str]]:
        """Apply one users/update record; return (created fields, filtered-out fields)."""
        email, user_id = record.get("email"), record.get("userId")
        data_fields = record.get("dataFields") or {}
        # Identifiers first (without creating anyone), so a bad e-mail is reported as such.
        _, ident, suffix = self._resolve(email, user_id, create=False)
        try:
            data, flat, created, filtered = self.user_fields.check(data_fields, allow_new)
        except ValueError as exc:
            raise _ItemError(
                f"invalidData{suffix}",
                str(ident),
                400,
                "RequestFieldsTypesMismatched",
                f"Field types do not match the project's: {exc}",
            ) from None
        user, _, _ = self._resolve(email, user_id)
        assert user is not None
        self.user_fields.register(flat)
        user.data_fields = _merge(user.data_fields, data, bool(record.get("mergeNestedObjects")))
        user.updated = time.time()
        return created, filtered

    # -------------------------------------------------------------------------- dispatch
    def handle(self, endpoint: str, call: Call) -> Answer:
        handler = HANDLERS[endpoint]
        definition = BODY_DEFINITIONS.get(endpoint)
        if definition is not None:
            _validate(definition, call.body)
        with self.lock:
            try:
                return handler(self, call)
            except ApiError as exc:
                return exc.answer()


# ------------------------------------------------------------------------------ validation
_VALIDATORS: dict[str, jsonschema.protocols.Validator] = {}
_Check = Callable[[Any], bool]
_CHECKS: dict[str, _Check] = {}
_TYPE_CHECKS: dict[str, _Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}
_SUPPORTED_KEYWORDS = {"type", "properties", "required", "items", "$ref", "format"}


def _compile(schema: dict[str, Any]) -> _Check:
    """Compile the JSON Schema subset the spec's definitions use into one fast yes/no check.

    Validating a 1,000-user bulk body with :mod:`jsonschema` costs more than storing it; this
    check gives the same verdict (it covers every keyword these definitions use) in a fraction of
    the time, and :mod:`jsonschema` still produces the message when a body fails.
    """
    unsupported = set(schema) - _SUPPORTED_KEYWORDS
    if unsupported:
        raise ValueError(f"cannot compile schema keywords {sorted(unsupported)}")
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]

        def check_ref(value: Any) -> bool:
            return _check(name)(value)

        return check_ref
    checks: list[_Check] = []
    if "type" in schema:
        checks.append(_TYPE_CHECKS[schema["type"]])
    required = tuple(schema.get("required", ()))
    properties = {key: _compile(sub) for key, sub in schema.get("properties", {}).items()}
    items = _compile(schema["items"]) if "items" in schema else None

    def check(value: Any) -> bool:
        for type_check in checks:
            if not type_check(value):
                return False
        if isinstance(value, dict):
            for key in required:
                if key not in value:
                    return False
            for key, sub in properties.items():
                if key in value and not sub(value[key]):
                    return False
        elif items is not None and isinstance(value, list):
            for item in value:
                if not items(item):
                    return False
        return True

    return check


def _check(definition: str) -> _Check:
    found = _CHECKS.get(definition)
    if found is None:
        found = _CHECKS[definition] = _compile(DEFINITIONS[definition])
    return found


def _validator(definition: str) -> jsonschema.protocols.Validator:
    validator = _VALIDATORS.get(definition)
    if validator is None:
        schema = {"$ref": f"#/definitions/{definition}", "definitions": DEFINITIONS}
        validator = _VALIDATORS[definition] = jsonschema.Draft7Validator(schema)
    return validator


def _validate(definition: str, body: Any) -> None:
    """Raise a 400 ``BadParams`` naming the first field of ``body`` the spec does not allow."""
    if _check(definition)(body):
        return
    validator = _validator(definition)
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is None:
        return
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    where = f" at {path}" if path else ""
    raise ApiError(400, "BadParams", f"Invalid request body{where}: {error.message}", {"field": path or None})


# ------------------------------------------------------------------------------- handlers
def _bulk_answer(
    success: int, failed: dict[str, list[str]], created: list[str], filtered: list[str]
) -> dict[str, Any]:
    return {
        "successCount": success,
        "failCount": sum(len(v) for v in failed.values()),
        "createdFields": sorted(set(created)),
        "filteredOutFields": sorted(set(filtered)),
        "failedUpdates": failed,
        # Deprecated top-level copies Iterable still sends.
        "invalidEmails": list(failed["invalidEmails"]),
        "invalidUserIds": list(failed["invalidUserIds"]),
    }


def _empty_failures() -> dict[str, list[str]]:
    return {key: [] for key in FAILED_UPDATE_KEYS}


def _users_update(project: Project, call: Call) -> Answer:
    body = call.body
    allow_new = body.get("createNewFields") is not False
    try:
        project._upsert(body, allow_new)
    except _ItemError as exc:
        raise exc.api_error() from None
    return Answer(200, envelope("User updated"))


def _users_bulk_update(project: Project, call: Call) -> Answer:
    allow_new = call.body.get("createNewFields") is not False
    failed = _empty_failures()
    created: list[str] = []
    filtered: list[str] = []
    success = 0
    for record in call.body["users"]:
        try:
            new, dropped = project._upsert(record, allow_new)
        except _ItemError as exc:
            failed[exc.key].append(exc.value)
            continue
        created += new
        filtered += dropped
        success += 1
    return Answer(200, _bulk_answer(success, failed, created, filtered))


def _get_user(project: Project, email: str | None = None, user_id: str | None = None) -> Answer:
    user = project.find_user(email, user_id)
    # Iterable answers 200 with an empty object for an unknown user.
    return Answer(200, {} if user is None else {"user": project.user_view(user)})


def _valid_email(email: str) -> str:
    if not is_valid_email(email):
        raise ApiError(400, "InvalidEmailAddressError", f"Invalid email: {email}")
    return email


def _users_get_by_email(project: Project, call: Call) -> Answer:
    email = call.query_value("email")
    if not email:
        raise ApiError(400, "BadParams", "Missing required query parameter: email")
    return _get_user(project, email=_valid_email(email))


def _users_by_email_path(project: Project, call: Call) -> Answer:
    return _get_user(project, email=_valid_email(call.params["email"]))


def _users_by_user_id(project: Project, call: Call) -> Answer:
    user_id = call.params.get("userId") or call.query_value("userId")
    if not user_id:
        raise ApiError(400, "BadParams", "Missing required parameter: userId")
    return _get_user(project, user_id=user_id)


def _delete_user(project: Project, email: str | None = None, user_id: str | None = None) -> Answer:
    user = project.find_user(email, user_id)
    # Deletion is asynchronous at Iterable: the answer does not say whether the user existed.
    if user is not None:
        project._delete(user)
    return Answer(200, envelope("User deletion queued", params={"deleted": user is not None}))


def _users_delete_by_email(project: Project, call: Call) -> Answer:
    return _delete_user(project, email=_valid_email(call.params["email"]))


def _users_delete_by_user_id(project: Project, call: Call) -> Answer:
    return _delete_user(project, user_id=call.params["userId"])


def _set_memberships(project: Project, user: _User, list_ids: list[int]) -> None:
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
        user, _, _ = project._resolve(body.get("email"), body.get("userId"))
    except _ItemError as exc:
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


def _known_list(project: Project, list_id: Any) -> dict[str, Any]:
    lst = project.lists.get(list_id)
    if lst is None:
        # Iterable really answers an unknown list id with HTTP 400 and code "Success".
        raise ApiError(400, "Success", f"Invalid listId: {list_id}", {"listId": list_id})
    return lst


def _lists_subscribe(project: Project, call: Call) -> Answer:
    lst = _known_list(project, call.body["listId"])
    existing_only = bool(call.body.get("updateExistingUsersOnly"))
    failed = _empty_failures()
    created: list[str] = []
    filtered: list[str] = []
    success = 0
    for record in call.body["subscribers"]:
        email, user_id = record.get("email"), record.get("userId")
        try:
            user, ident, suffix = project._resolve(email, user_id, create=False)
            if user is None and existing_only:
                failed[f"notFound{suffix}"].append(ident)
                continue
            new, dropped = project._upsert(record, allow_new=True)
            user, _, _ = project._resolve(email, user_id)
        except _ItemError as exc:
            failed[exc.key].append(exc.value)
            continue
        assert user is not None
        created += new
        filtered += dropped
        lst["subscribers"].add(project.member_key(user))
        if lst["id"] not in user.email_list_ids:
            user.email_list_ids = sorted([*user.email_list_ids, lst["id"]])
        success += 1
    return Answer(200, _bulk_answer(success, failed, created, filtered))


def _lists_unsubscribe(project: Project, call: Call) -> Answer:
    lst = _known_list(project, call.body["listId"])
    channel_unsubscribe = bool(call.body.get("channelUnsubscribe"))
    failed = _empty_failures()
    success = 0
    for record in call.body["subscribers"]:
        try:
            user, ident, suffix = project._resolve(record.get("email"), record.get("userId"), create=False)
        except _ItemError as exc:
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
    return Answer(200, _bulk_answer(success, failed, [], []))


def _lists_delete(project: Project, call: Call) -> Answer:
    list_id = _int_param(call.params["listId"], "listId")
    if list_id not in project.lists:
        raise ApiError(400, "BadParams", f"Invalid listId: {list_id}")
    del project.lists[list_id]
    for user in project._users:
        if user is not None and list_id in user.email_list_ids:
            user.email_list_ids.remove(list_id)
    return Answer(200, envelope(f"Deleted list {list_id}"))


def _lists_size(project: Project, call: Call) -> Answer:
    lst = _known_list(project, _int_param(call.params["listId"], "listId"))
    return Answer(200, str(len(lst["subscribers"])), content_type="text/plain")


def _lists_get_users(project: Project, call: Call) -> Answer:
    raw = call.query_value("listId")
    if raw is None:
        raise ApiError(400, "BadParams", "Missing required query parameter: listId")
    lst = _known_list(project, _int_param(raw, "listId"))
    return Answer(200, "\n".join(sorted(lst["subscribers"])), content_type="text/plain")


def _int_param(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "BadParams", f"{name} must be an integer, got {raw!r}") from None


def _track(project: Project, record: dict[str, Any]) -> str:
    """Store one event (or update the one with the same id); return its id."""
    event_id = record.get("id")
    if event_id is not None and len(event_id.encode()) > EVENT_ID_MAX_BYTES:
        raise _ItemError(
            "invalidEmails" if record.get("email") is not None else "invalidUserIds",
            str(record.get("email") or record.get("userId")),
            400,
            "BadParams",
            f"Event id is longer than {EVENT_ID_MAX_BYTES} bytes",
        )
    user, ident, suffix = project._resolve(record.get("email"), record.get("userId"))
    assert user is not None
    name = record["eventName"]
    types = project.event_fields.setdefault(name, _FieldTypes())
    allow_new = record.get("createNewFields") is not False
    try:
        data, flat, _, _ = types.check(record.get("dataFields") or {}, allow_new)
    except ValueError as exc:
        raise _ItemError(
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
    position = project._event_positions.get(event_id)
    if position is None:
        project._event_positions[event_id] = len(project.events)
        project.events.append(event)
    else:
        # Iterable updates the event with the same id instead of storing a second one.
        project.events[position] = event
    return event_id


def _events_track(project: Project, call: Call) -> Answer:
    name = call.body["eventName"]
    if name in project.disallowed_event_names:
        raise ApiError(400, "BadParams", f"Event name {name!r} is not allowed in this project")
    try:
        event_id = _track(project, call.body)
    except _ItemError as exc:
        raise exc.api_error() from None
    return Answer(200, envelope(f"Event with id: {event_id} tracked.", params={"id": event_id}))


def _events_track_bulk(project: Project, call: Call) -> Answer:
    failed = _empty_failures()
    disallowed: set[str] = set()
    success = 0
    for record in call.body["events"]:
        name = record["eventName"]
        if name in project.disallowed_event_names:
            disallowed.add(name)
            continue
        try:
            _track(project, record)
        except _ItemError as exc:
            failed[exc.key].append(exc.value)
            continue
        success += 1
    answer = _bulk_answer(success, failed, [], [])
    answer["failCount"] += sum(1 for r in call.body["events"] if r["eventName"] in disallowed)
    answer["disallowedEventNames"] = sorted(disallowed)
    return Answer(200, answer)


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
        user, _, _ = project._resolve(email, user_id, create=user_id is None, email_field="recipientEmail")
    except _ItemError as exc:
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


def build_webhook(
    event_name: str, *, email: str | None, user_id: str | None, data_fields: dict[str, Any]
) -> dict[str, Any]:
    """Shape a system-webhook body as Iterable sends it."""
    body: dict[str, Any] = {"email": email, "eventName": event_name, "dataFields": data_fields}
    if user_id is not None:
        body["userId"] = user_id
    return body


def _email_target(project: Project, call: Call) -> Answer:
    return _send(project, call, "Email")


def _sms_target(project: Project, call: Call) -> Answer:
    return _send(project, call, "SMS")


def _channels(project: Project, call: Call) -> Answer:
    return Answer(200, {"channels": copy.deepcopy(project.channels)})


def _message_types(project: Project, call: Call) -> Answer:
    return Answer(200, {"messageTypes": copy.deepcopy(project.message_types)})


def _campaigns(project: Project, call: Call) -> Answer:
    return Answer(200, {"campaigns": copy.deepcopy(list(project.campaigns.values()))})


def _get_fields(project: Project, call: Call) -> Answer:
    return Answer(200, {"fields": dict(sorted(project.user_fields.types.items()))})


def _trigger_workflow(project: Project, call: Call) -> Answer:
    body = call.body
    workflow_id = body["workflowId"]
    if workflow_id not in project.workflows:
        raise ApiError(400, "BadParams", f"Invalid workflowId: {workflow_id} does not exist")
    email, user_id, list_id = body.get("email"), body.get("userId"), body.get("listId")
    if list_id is not None:
        _known_list(project, list_id)
    elif email is None and user_id is None:
        raise ApiError(400, "BadParams", "One of email, userId or listId must be provided")
    user = None
    if list_id is None:
        try:
            user, _, _ = project._resolve(email, user_id)
        except _ItemError as exc:
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


#: Handlers by endpoint key; the HTTP layer routes to these.
HANDLERS: dict[str, Handler] = {
    "POST /api/users/update": _users_update,
    "POST /api/users/bulkUpdate": _users_bulk_update,
    "GET /api/users/getByEmail": _users_get_by_email,
    "GET /api/users/byUserId": _users_by_user_id,
    "GET /api/users/byUserId/{userId}": _users_by_user_id,
    "DELETE /api/users/byUserId/{userId}": _users_delete_by_user_id,
    "GET /api/users/getFields": _get_fields,
    "GET /api/users/{email}": _users_by_email_path,
    "DELETE /api/users/{email}": _users_delete_by_email,
    "POST /api/users/updateSubscriptions": _users_update_subscriptions,
    "GET /api/lists": _lists_get,
    "POST /api/lists": _lists_create,
    "POST /api/lists/subscribe": _lists_subscribe,
    "POST /api/lists/unsubscribe": _lists_unsubscribe,
    "GET /api/lists/getUsers": _lists_get_users,
    "GET /api/lists/{listId}/size": _lists_size,
    "DELETE /api/lists/{listId}": _lists_delete,
    "POST /api/events/track": _events_track,
    "POST /api/events/trackBulk": _events_track_bulk,
    "POST /api/email/target": _email_target,
    "POST /api/sms/target": _sms_target,
    "GET /api/channels": _channels,
    "GET /api/messageTypes": _message_types,
    "GET /api/campaigns": _campaigns,
    "POST /api/workflows/triggerWorkflow": _trigger_workflow,
}
