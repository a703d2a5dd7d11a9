"""Operators for Iterable user profiles: upsert (one or in bulk), look up, subscriptions, delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_provider_iterable._values import pick_paths
from airflow_provider_iterable.operators._base import (
    IterableBaseOperator,
    check_xcom_fields,
    fail,
    one_of,
    optional_bool,
    optional_dict,
    optional_int,
    optional_int_list,
    required_str,
)
from airflow_provider_iterable.operators._bulk import IterableBulkBaseOperator
from airflow_provider_iterable.operators._records import USER_SHAPE


class IterableUpsertUserOperator(IterableBaseOperator):
    """Create or update one user profile (``POST /api/users/update``).

    ``dataFields`` are merged into the profile; fields not sent are kept.

    .. seealso:: https://api.iterable.com/api/docs#users_updateUser

    :param email: the user's e-mail address (templated). Set ``email`` or ``user_id``, not both.
    :param user_id: the user's userId (templated).
    :param data_fields: profile fields to set (templated, a dict or a rendered JSON object).
    :param prefer_user_id: create a new user by ``user_id`` when none exists yet.
    :param merge_nested_objects: merge nested objects instead of replacing them.
    :param create_new_fields: whether fields unknown to the project are created (Iterable's
        project setting applies when ``None``).
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: Iterable's answer envelope ``{"msg", "code", "params"}``.
    """

    template_fields: Sequence[str] = ("email", "user_id", "data_fields")
    template_fields_renderers = {"data_fields": "json"}
    ui_color = "#e9f1fb"

    def __init__(
        self,
        *,
        email: str | None = None,
        user_id: str | None = None,
        data_fields: Mapping[str, Any] | None = None,
        prefer_user_id: bool | None = None,
        merge_nested_objects: bool | None = None,
        create_new_fields: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.email = email
        self.user_id = user_id
        self.data_fields = data_fields
        self.prefer_user_id = prefer_user_id
        self.merge_nested_objects = merge_nested_objects
        self.create_new_fields = create_new_fields

    def execute(self, context: Context) -> Any:
        """Upsert the user; return Iterable's envelope."""
        identity = one_of(email=self.email, user_id=self.user_id)
        data_fields = optional_dict(self.data_fields, "data_fields")
        prefer = optional_bool(self.prefer_user_id, "prefer_user_id")
        merge = optional_bool(self.merge_nested_objects, "merge_nested_objects")
        create = optional_bool(self.create_new_fields, "create_new_fields")
        with self._iterable_errors("upserting the user"):
            return self.hook.upsert_user(
                **identity,
                data_fields=data_fields,
                prefer_user_id=prefer,
                merge_nested_objects=merge,
                create_new_fields=create,
            )


class IterableBulkUpsertUsersOperator(IterableBulkBaseOperator):
    """Create or update many user profiles (``POST /api/users/bulkUpdate``), in batches.

    The input is ``users`` (a list of Iterable-shaped users, or an XCom of one) **or**
    ``users_file``, read as a stream so memory stays flat however large it is: a local path or any
    URI Airflow's ``ObjectStoragePath`` opens (``file://``, ``s3://``, ``gs://``, ...), in

    - JSON Lines: one user per line, in Iterable's shape
      (``{"email": "ada@example.com", "dataFields": {"plan": "pro"}}``), or
    - CSV: an ``email`` and/or ``userId`` column identifies the user; every other non-empty cell
      goes into ``dataFields``, as a string unless ``field_types`` names the column's type.

    The file is checked in full before the first request (a malformed line fails the task naming
    its line number), then sent in batches of at most ``batch_size`` users and ``max_batch_bytes``
    bytes, paced by the connection's rate limit (``users/bulkUpdate``: 5 requests/s). Iterable
    answers 200 even when some users fail; their identifiers are merged into the summary, and
    with ``fail_on_partial_failure`` the task fails once everything was sent.
    Retrying the task resends every user, which ``bulkUpdate`` absorbs (it is an upsert).

    .. seealso:: https://api.iterable.com/api/docs#users_bulkUpdateUser

    :param users: the users (templated; an XCom such as ``extract.output`` works).
    :param users_file: path or URI of a JSON Lines or CSV file (templated).
    :param create_new_fields: whether fields unknown to the project are created.
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: ``{"batches", "successCount", "failCount", "failedUpdates", "failedUpdateCounts",
        "createdFields", "filteredOutFields"}`` merged over all batches.

    The batching, file and failure parameters (``file_format``, ``field_types``, ``batch_size``,
    ``max_batch_bytes``, ``fail_on_partial_failure``, ``failed_ids_cap``, ``log_every_batches``,
    ``max_in_flight``) are described on
    :class:`~airflow_provider_iterable.operators._bulk.IterableBulkBaseOperator`.
    """

    template_fields: Sequence[str] = ("users", "users_file", "file_format")
    ui_color = "#e9f1fb"
    shape = USER_SHAPE
    items_param = "users"
    file_param = "users_file"

    def __init__(
        self,
        *,
        users: Sequence[Mapping[str, Any]] | None = None,
        users_file: str | None = None,
        create_new_fields: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.users = users
        self.users_file = users_file
        self.create_new_fields = create_new_fields

    def _prepare(self, context: Context) -> None:
        self._create_new_fields = optional_bool(self.create_new_fields, "create_new_fields")

    def _send_batch(self, batch: list[dict[str, Any]]) -> Any:
        return self.hook.bulk_update_users(batch, create_new_fields=self._create_new_fields)


class _IterableGetUserOperator(IterableBaseOperator):
    """Look one user up; shared by the by-email and by-userId operators."""

    ui_color = "#e9f1fb"
    _key_name = ""

    def __init__(
        self,
        *,
        fail_if_missing: bool = True,
        xcom_fields: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fail_if_missing = fail_if_missing
        self.xcom_fields = xcom_fields

    def _lookup(self, key: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def _get(self, raw_key: Any) -> dict[str, Any] | None:
        key = required_str(raw_key, self._key_name)
        fields = check_xcom_fields(self.xcom_fields)
        with self._iterable_errors(f"looking the user up by {self._key_name}"):
            user = self._lookup(key)
        if user is None:
            if self.fail_if_missing:
                # Not AirflowFailException: writes reach Iterable's reads after up to a minute, so
                # a retry of this task (if the DAG gives it retries) may find a user just created.
                raise AirflowNotFoundException(
                    f"Iterable has no user with this {self._key_name}; set fail_if_missing=False "
                    "to return None instead"
                )
            self.log.info("No user with this %s; returning None", self._key_name)
            return None
        return pick_paths(user, fields) if fields is not None else user


class IterableGetUserByEmailOperator(_IterableGetUserOperator):
    """Return one user profile by e-mail address (``GET /api/users/getByEmail``).

    .. seealso:: https://api.iterable.com/api/docs#users_getUser_0

    :param email: the e-mail address (templated).
    :param fail_if_missing: fail when there is no such user (default ``True``); with ``False`` the
        task succeeds and returns ``None``.
    :param xcom_fields: dotted paths of the profile to return (``["email", "dataFields.plan"]``);
        the profile holds personal data and XCom lives in Airflow's database, so return only what
        downstream tasks need. Default: the whole profile.
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: the user dict (Iterable's ``user`` object), or ``None``.
    """

    template_fields: Sequence[str] = ("email",)
    _key_name = "email"

    def __init__(self, *, email: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.email = email

    def _lookup(self, key: str) -> dict[str, Any] | None:
        return self.hook.get_user_by_email(key)

    def execute(self, context: Context) -> dict[str, Any] | None:
        """Look the user up."""
        return self._get(self.email)


class IterableGetUserByIdOperator(_IterableGetUserOperator):
    """Return one user profile by userId (``GET /api/users/byUserId``).

    .. seealso:: https://api.iterable.com/api/docs#users_getUserById

    :param user_id: the userId (templated).
    :param fail_if_missing: fail when there is no such user (default ``True``); with ``False`` the
        task succeeds and returns ``None``.
    :param xcom_fields: dotted paths of the profile to return; default the whole profile.
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: the user dict, or ``None``.
    """

    template_fields: Sequence[str] = ("user_id",)
    _key_name = "user_id"

    def __init__(self, *, user_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user_id = user_id

    def _lookup(self, key: str) -> dict[str, Any] | None:
        return self.hook.get_user_by_id(key)

    def execute(self, context: Context) -> dict[str, Any] | None:
        """Look the user up."""
        return self._get(self.user_id)


class IterableUpdateUserSubscriptionsOperator(IterableBaseOperator):
    """Set a user's list memberships and opt-outs (``POST /api/users/updateSubscriptions``).

    .. warning::
        Iterable **replaces** every field this call carries: ``email_list_ids=[5]`` leaves the user
        on list 5 only and removes them from every other list; ``unsubscribed_channel_ids=[]``
        re-subscribes them to every channel. This operator therefore sends **only the fields you
        set** (``None``, the default, means "leave as it is in Iterable"). Pass the complete
        desired value of each field you set, not just the change.

    .. seealso:: https://api.iterable.com/api/docs#users_updateSubscriptions

    :param email: the user's e-mail address (templated). Set ``email`` or ``user_id``, not both.
    :param user_id: the user's userId (templated).
    :param email_list_ids: the complete list of list ids the user is on (templated).
    :param unsubscribed_channel_ids: the complete list of channel ids the user opted out of.
    :param unsubscribed_message_type_ids: the complete list of message type ids opted out of.
    :param subscribed_message_type_ids: the complete list of message type ids opted in to (projects
        with opt-in message types only).
    :param campaign_id: campaign to attribute unsubscribes to.
    :param template_id: template to attribute unsubscribes to.
    :param validate_channel_alignment: let Iterable check that message types belong to channels.
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: Iterable's answer envelope.
    """

    template_fields: Sequence[str] = (
        "email",
        "user_id",
        "email_list_ids",
        "unsubscribed_channel_ids",
        "unsubscribed_message_type_ids",
        "subscribed_message_type_ids",
        "campaign_id",
        "template_id",
    )
    ui_color = "#e9f1fb"

    def __init__(
        self,
        *,
        email: str | None = None,
        user_id: str | None = None,
        email_list_ids: Sequence[int] | None = None,
        unsubscribed_channel_ids: Sequence[int] | None = None,
        unsubscribed_message_type_ids: Sequence[int] | None = None,
        subscribed_message_type_ids: Sequence[int] | None = None,
        campaign_id: int | None = None,
        template_id: int | None = None,
        validate_channel_alignment: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.email = email
        self.user_id = user_id
        self.email_list_ids = email_list_ids
        self.unsubscribed_channel_ids = unsubscribed_channel_ids
        self.unsubscribed_message_type_ids = unsubscribed_message_type_ids
        self.subscribed_message_type_ids = subscribed_message_type_ids
        self.campaign_id = campaign_id
        self.template_id = template_id
        self.validate_channel_alignment = validate_channel_alignment

    def execute(self, context: Context) -> Any:
        """Send the fields that were set; return Iterable's envelope."""
        identity: dict[str, Any] = one_of(email=self.email, user_id=self.user_id)
        fields = {
            name: optional_int_list(getattr(self, name), name)
            for name in (
                "email_list_ids",
                "unsubscribed_channel_ids",
                "unsubscribed_message_type_ids",
                "subscribed_message_type_ids",
            )
        }
        sent: dict[str, Any] = {name: value for name, value in fields.items() if value is not None}
        if not sent:
            raise fail(
                "Nothing to update: set at least one of email_list_ids, unsubscribed_channel_ids, "
                "unsubscribed_message_type_ids or subscribed_message_type_ids"
            )
        attribution: dict[str, Any] = {
            "campaign_id": optional_int(self.campaign_id, "campaign_id"),
            "template_id": optional_int(self.template_id, "template_id"),
            "validate_channel_alignment": optional_bool(
                self.validate_channel_alignment, "validate_channel_alignment"
            ),
        }
        self.log.info("Replacing these subscription fields in Iterable: %s", ", ".join(sorted(sent)))
        with self._iterable_errors("updating the user's subscriptions"):
            return self.hook.update_subscriptions(**identity, **sent, **attribution)


class IterableDeleteUserOperator(IterableBaseOperator):
    """Delete one user profile (``DELETE /api/users/{email}`` or ``/api/users/byUserId/{userId}``).

    Iterable deletes asynchronously; the answer only says the request was accepted. Deleting is
    not forgetting: the user may be created again by a later write (use Iterable's GDPR
    ``forget`` for that).

    .. seealso:: https://api.iterable.com/api/docs#users_delete

    :param email: the user's e-mail address (templated). Set ``email`` or ``user_id``, not both.
    :param user_id: the user's userId (templated).
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: Iterable's answer envelope.
    """

    template_fields: Sequence[str] = ("email", "user_id")
    ui_color = "#fbe9e9"

    def __init__(self, *, email: str | None = None, user_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.email = email
        self.user_id = user_id

    def execute(self, context: Context) -> Any:
        """Delete the user; return Iterable's envelope."""
        identity = one_of(email=self.email, user_id=self.user_id)
        with self._iterable_errors("deleting the user"):
            return self.hook.delete_user(**identity)
