"""Lists: create static lists, read the project's lists, add and remove subscribers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_iterable.exceptions import IterableOutcomeUnknownError
from airflow_provider_iterable.hooks._arguments import as_dict, require_items, require_text
from airflow_provider_iterable.hooks._base import IterableHookBase, endpoint
from airflow_provider_iterable.hooks._encoding import compact

__all__ = ["ListsApi"]


class ListsApi(IterableHookBase):
    """The ``/api/lists`` endpoints of :class:`~airflow_provider_iterable.hooks.iterable.IterableHook`."""

    @endpoint("POST /api/lists")
    def create_list(self, name: str, description: str | None = None) -> int:
        """Create a static list (``POST /api/lists``) and return its id.

        Not retried after a read timeout or 5xx: a repeat could create a second list.

        :param name: the list's name.
        :param description: the list's description.
        :return: the new list's id.

        .. seealso:: https://api.iterable.com/api/docs#lists_create
        """
        require_text("create_list", "name", name)
        body = compact({"name": name, "description": description})
        answer = as_dict(self._call("POST /api/lists", body=body))
        try:
            return int(answer["listId"])
        except (KeyError, TypeError, ValueError):
            # The list was most likely created: creating again would make a second one.
            raise IterableOutcomeUnknownError(
                endpoint="POST /api/lists", reason="Iterable answered without a listId", status=200
            ) from None

    @endpoint("GET /api/lists")
    def get_lists(self) -> list[dict[str, Any]]:
        """Return the project's lists (``GET /api/lists``).

        :return: ``[{"id", "name", "description", "createdAt", "listType"}, ...]``.

        .. seealso:: https://api.iterable.com/api/docs#lists_getLists
        """
        answer = as_dict(self._call("GET /api/lists"))
        return list(answer.get("lists") or [])

    @endpoint("POST /api/lists/subscribe")
    def subscribe_to_list(
        self,
        list_id: int,
        subscribers: Sequence[Mapping[str, Any]],
        *,
        update_existing_users_only: bool | None = None,
    ) -> dict[str, Any]:
        """Add users to a static list (``POST /api/lists/subscribe``).

        :param list_id: the list's id.
        :param subscribers: users in Iterable's shape, ``{"email" or "userId", "dataFields", ...}``.
        :param update_existing_users_only: skip users that do not exist yet instead of creating them.
        :return: Iterable's bulk answer (``successCount``, ``failCount``, ``failedUpdates``).

        .. seealso:: https://api.iterable.com/api/docs#lists_subscribe
        """
        body = compact(
            {
                "listId": list_id,
                "subscribers": require_items("subscribe_to_list", "subscribers", subscribers),
                "updateExistingUsersOnly": update_existing_users_only,
            }
        )
        return as_dict(self._call("POST /api/lists/subscribe", body=body))

    @endpoint("POST /api/lists/unsubscribe")
    def unsubscribe_from_list(
        self,
        list_id: int,
        subscribers: Sequence[Mapping[str, Any]],
        *,
        campaign_id: int | None = None,
        channel_unsubscribe: bool | None = None,
    ) -> dict[str, Any]:
        """Remove users from a static list (``POST /api/lists/unsubscribe``).

        :param list_id: the list's id.
        :param subscribers: users in Iterable's shape, ``{"email" or "userId"}``.
        :param campaign_id: campaign to attribute the unsubscribes to.
        :param channel_unsubscribe: also unsubscribe them from the list's channel (a global unsubscribe).
        :return: Iterable's bulk answer.

        .. seealso:: https://api.iterable.com/api/docs#lists_unsubscribe
        """
        body = compact(
            {
                "listId": list_id,
                "subscribers": require_items("unsubscribe_from_list", "subscribers", subscribers),
                "campaignId": campaign_id,
                "channelUnsubscribe": channel_unsubscribe,
            }
        )
        return as_dict(self._call("POST /api/lists/unsubscribe", body=body))
