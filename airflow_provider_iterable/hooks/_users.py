"""Users: create, update, read and delete user profiles, and set their subscriptions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.hooks._arguments import (
    as_dict,
    as_list,
    blank,
    require_identity,
    require_items,
    require_text,
)
from airflow_provider_iterable.hooks._base import IterableHookBase, endpoint
from airflow_provider_iterable.hooks._encoding import compact

__all__ = ["UsersApi"]


class UsersApi(IterableHookBase):
    """The ``/api/users`` endpoints of :class:`~airflow_provider_iterable.hooks.iterable.IterableHook`."""

    @endpoint("POST /api/users/update")
    def upsert_user(
        self,
        *,
        email: str | None = None,
        user_id: str | None = None,
        data_fields: Mapping[str, Any] | None = None,
        prefer_user_id: bool | None = None,
        merge_nested_objects: bool | None = None,
        create_new_fields: bool | None = None,
    ) -> dict[str, Any]:
        """Create or update a user profile (``POST /api/users/update``).

        :param email: the user's e-mail address; ``email`` or ``user_id`` is required.
        :param user_id: the user's userId.
        :param data_fields: profile fields to merge into the profile.
        :param prefer_user_id: create a new user when ``user_id`` is unknown (userID-based projects).
        :param merge_nested_objects: merge nested objects instead of replacing them.
        :param create_new_fields: whether fields new to the project are added to its schema.
        :return: Iterable's envelope ``{"msg", "code", "params"}``.

        .. seealso:: https://api.iterable.com/api/docs#users_updateUser
        """
        require_identity("upsert_user", email=email, user_id=user_id)
        body = compact(
            {
                "email": email,
                "userId": user_id,
                "dataFields": data_fields,
                "preferUserId": prefer_user_id,
                "mergeNestedObjects": merge_nested_objects,
                "createNewFields": create_new_fields,
            }
        )
        return as_dict(self._call("POST /api/users/update", body=body))

    @endpoint("POST /api/users/bulkUpdate")
    def bulk_update_users(
        self, users: Sequence[Mapping[str, Any]], *, create_new_fields: bool | None = None
    ) -> dict[str, Any]:
        """Create or update many users in one call (``POST /api/users/bulkUpdate``).

        :param users: users in Iterable's shape, ``{"email" or "userId", "dataFields", ...}``.
        :param create_new_fields: whether fields new to the project are added to its schema.
        :return: Iterable's bulk answer (``successCount``, ``failCount``, ``failedUpdates``, ...).

        .. seealso:: https://api.iterable.com/api/docs#users_bulkUpdateUser
        """
        body = compact(
            {
                "users": require_items("bulk_update_users", "users", users),
                "createNewFields": create_new_fields,
            }
        )
        return as_dict(self._call("POST /api/users/bulkUpdate", body=body))

    @endpoint("GET /api/users/getByEmail")
    def get_user_by_email(self, email: str) -> dict[str, Any] | None:
        """Return a user's profile by e-mail address (``GET /api/users/getByEmail?email=``).

        :param email: the user's e-mail address.
        :return: the user dict (``email``, ``userId``, ``dataFields``, ...), or ``None`` when unknown.

        .. seealso:: https://api.iterable.com/api/docs#users_getUser
        """
        require_text("get_user_by_email", "email", email)
        return _user_or_none(self._call("GET /api/users/getByEmail", params={"email": email}))

    @endpoint("GET /api/users/byUserId")
    def get_user_by_id(self, user_id: str) -> dict[str, Any] | None:
        """Return a user's profile by userId (``GET /api/users/byUserId?userId=``).

        :param user_id: the user's userId.
        :return: the user dict, or ``None`` when unknown.

        .. seealso:: https://api.iterable.com/api/docs#users_getUserById
        """
        require_text("get_user_by_id", "user_id", user_id)
        return _user_or_none(self._call("GET /api/users/byUserId", params={"userId": user_id}))

    @endpoint("POST /api/users/updateSubscriptions")
    def update_subscriptions(
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
    ) -> dict[str, Any]:
        """Set a user's subscriptions (``POST /api/users/updateSubscriptions``).

        Iterable **replaces** every field it is given (``email_list_ids=[5]`` leaves the user on
        list 5 only), so only the arguments that are not ``None`` are sent.

        :param email: the user's e-mail address; ``email`` or ``user_id`` is required.
        :param user_id: the user's userId.
        :param email_list_ids: the lists the user is on afterwards.
        :param unsubscribed_channel_ids: the channels the user is unsubscribed from afterwards.
        :param unsubscribed_message_type_ids: the message types the user is unsubscribed from.
        :param subscribed_message_type_ids: the message types the user is subscribed to (opt-in types).
        :param campaign_id: campaign to attribute unsubscribes to.
        :param template_id: template to attribute unsubscribes to.
        :param validate_channel_alignment: ``False`` allows message types of other channels.
        :return: Iterable's envelope.

        .. seealso:: https://api.iterable.com/api/docs#users_updateSubscriptions
        """
        require_identity("update_subscriptions", email=email, user_id=user_id)
        body = compact(
            {
                "email": email,
                "userId": user_id,
                "emailListIds": as_list(email_list_ids),
                "unsubscribedChannelIds": as_list(unsubscribed_channel_ids),
                "unsubscribedMessageTypeIds": as_list(unsubscribed_message_type_ids),
                "subscribedMessageTypeIds": as_list(subscribed_message_type_ids),
                "campaignId": campaign_id,
                "templateId": template_id,
                "validateChannelAlignment": validate_channel_alignment,
            }
        )
        return as_dict(self._call("POST /api/users/updateSubscriptions", body=body))

    @endpoint("DELETE /api/users/{email}", "DELETE /api/users/byUserId/{userId}")
    def delete_user(self, *, email: str | None = None, user_id: str | None = None) -> dict[str, Any]:
        """Delete a user (``DELETE /api/users/{email}`` or ``DELETE /api/users/byUserId/{userId}``).

        Iterable deletes asynchronously: the profile may still be readable for a short while.

        :param email: the user's e-mail address; exactly one of ``email`` and ``user_id``.
        :param user_id: the user's userId.
        :return: Iterable's envelope.

        .. seealso:: https://api.iterable.com/api/docs#users_delete
        """
        if blank(email) == blank(user_id):
            raise IterableConfigError("delete_user needs exactly one of email or user_id")
        if not blank(email):
            require_text("delete_user", "email", email)
            return as_dict(self._call("DELETE /api/users/{email}", path={"email": cast(str, email)}))
        require_text("delete_user", "user_id", user_id)
        return as_dict(self._call("DELETE /api/users/byUserId/{userId}", path={"userId": cast(str, user_id)}))


def _user_or_none(answer: Any) -> dict[str, Any] | None:
    # Iterable answers an unknown user with 200 and ``{}`` or an empty ``user``.
    if not isinstance(answer, dict):
        return None
    user = answer.get("user")
    return user if isinstance(user, dict) and user else None
