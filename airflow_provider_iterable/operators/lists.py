"""Operators for Iterable static lists: create, list, add and remove subscribers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Context

from airflow_provider_iterable.operators._base import (
    IterableBaseOperator,
    as_int,
    optional_bool,
    optional_int,
    optional_str,
    required_str,
)
from airflow_provider_iterable.operators._bulk import IterableBulkBaseOperator
from airflow_provider_iterable.operators._records import SUBSCRIBER_SHAPE


class IterableCreateListOperator(IterableBaseOperator):
    """Create a static list (``POST /api/lists``) and return its id.

    Creating is not idempotent: run twice, it makes two lists with the same name. With
    ``reuse_existing=True`` the operator first looks for a list with exactly this name and
    returns its id instead, which also makes task retries safe. When the answer to the create
    call is lost (a timeout after the request was sent), the task fails without retrying, since
    the list may exist already.

    .. seealso:: https://api.iterable.com/api/docs#lists_create

    :param name: the list's name (templated).
    :param description: the list's description (templated).
    :param reuse_existing: return the id of an existing list with this name instead of creating
        a duplicate (default ``False``).
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: the list id (int).
    """

    template_fields: Sequence[str] = ("name", "description")
    ui_color = "#eef9e9"

    def __init__(
        self,
        *,
        name: str,
        description: str | None = None,
        reuse_existing: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.description = description
        self.reuse_existing = reuse_existing

    def execute(self, context: Context) -> int:
        """Create (or find) the list; return its id."""
        name = required_str(self.name, "name")
        description = optional_str(self.description, "description")
        if optional_bool(self.reuse_existing, "reuse_existing"):
            with self._iterable_errors("looking for an existing list"):
                lists = self.hook.get_lists()
            matches = sorted(
                as_int(item.get("id"), "list id in Iterable's answer")
                for item in lists
                if isinstance(item, Mapping) and item.get("name") == name
            )
            if matches:
                if len(matches) > 1:
                    self.log.warning(
                        "%d lists are named %r; using the oldest, id %d", len(matches), name, matches[0]
                    )
                else:
                    self.log.info("List %r exists already with id %d; reusing it", name, matches[0])
                return matches[0]
        with self._iterable_errors("creating the list"):
            list_id = self.hook.create_list(name, description)
        self.log.info("Created list %r with id %d", name, list_id)
        return int(list_id)


class IterableListProjectListsOperator(IterableBaseOperator):
    """Return the project's lists (``GET /api/lists``).

    .. seealso:: https://api.iterable.com/api/docs#lists_getLists

    :param list_type: keep only lists of this type (Iterable's ``listType``, e.g. ``"Standard"``
        or ``"Dynamic"``; case-insensitive). Default: all lists.
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: a list of ``{"id", "name", "description", "createdAt", "listType"}`` dicts.
    """

    template_fields: Sequence[str] = ("list_type",)
    ui_color = "#eef9e9"

    def __init__(self, *, list_type: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.list_type = list_type

    def execute(self, context: Context) -> list[dict[str, Any]]:
        """Fetch the lists."""
        wanted = optional_str(self.list_type, "list_type")
        with self._iterable_errors("fetching the lists"):
            lists = self.hook.get_lists()
        if wanted is not None:
            lists = [item for item in lists if str(item.get("listType", "")).lower() == wanted.lower()]
        return [dict(item) for item in lists]


class _IterableListMembershipOperator(IterableBulkBaseOperator):
    """Shared part of adding to and removing from a list."""

    template_fields: Sequence[str] = ("list_id", "subscribers", "subscribers_file", "file_format")
    ui_color = "#eef9e9"
    shape = SUBSCRIBER_SHAPE
    items_param = "subscribers"
    file_param = "subscribers_file"

    def __init__(
        self,
        *,
        list_id: int | str,
        subscribers: Sequence[Mapping[str, Any] | str] | None = None,
        subscribers_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.list_id = list_id
        self.subscribers = subscribers
        self.subscribers_file = subscribers_file

    def _prepare(self, context: Context) -> None:
        self._list_id = as_int(self.list_id, "list_id")


class IterableAddSubscribersToListOperator(_IterableListMembershipOperator):
    """Add users to a static list (``POST /api/lists/subscribe``), in batches.

    Subscribers are Iterable-shaped dicts (``{"email": ..., "dataFields": {...}}``) or bare
    e-mail addresses, given as ``subscribers`` (a list or an XCom of one) or read as a stream from
    ``subscribers_file`` (JSON Lines or CSV, local or any ``ObjectStoragePath`` URI), batched and
    reported exactly like :class:`~airflow_provider_iterable.operators.IterableBulkUpsertUsersOperator`.

    .. seealso:: https://api.iterable.com/api/docs#lists_subscribe

    :param list_id: the list (templated: an XCom such as ``create_list.output`` works; a rendered
        ``"42"`` is fine).
    :param subscribers: the users to add (templated).
    :param subscribers_file: path or URI of a JSON Lines or CSV file (templated).
    :param update_existing_users_only: skip users not yet in the project instead of creating them
        (userID-based and hybrid projects).
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: the bulk summary ``{"batches", "successCount", "failCount", "failedUpdates", ...}``.
    """

    def __init__(self, *, update_existing_users_only: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.update_existing_users_only = update_existing_users_only

    def _prepare(self, context: Context) -> None:
        super()._prepare(context)
        self._existing_only = optional_bool(self.update_existing_users_only, "update_existing_users_only")

    def _send_batch(self, batch: list[dict[str, Any]]) -> Any:
        return self.hook.subscribe_to_list(
            self._list_id, batch, update_existing_users_only=self._existing_only
        )


class IterableRemoveSubscribersFromListOperator(_IterableListMembershipOperator):
    """Remove users from a static list (``POST /api/lists/unsubscribe``), in batches.

    Input and batching as :class:`IterableAddSubscribersToListOperator`.

    .. seealso:: https://api.iterable.com/api/docs#lists_unsubscribe

    :param list_id: the list (templated; an XCom works; a rendered ``"42"`` is fine).
    :param subscribers: the users to remove (templated).
    :param subscribers_file: path or URI of a JSON Lines or CSV file (templated).
    :param campaign_id: campaign to attribute the unsubscribes to.
    :param channel_unsubscribe: also unsubscribe the users from the list's channel (a global
        unsubscribe from that channel; default ``False`` in Iterable).
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: the bulk summary.
    """

    template_fields: Sequence[str] = (*_IterableListMembershipOperator.template_fields, "campaign_id")

    def __init__(
        self,
        *,
        campaign_id: int | None = None,
        channel_unsubscribe: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.campaign_id = campaign_id
        self.channel_unsubscribe = channel_unsubscribe

    def _prepare(self, context: Context) -> None:
        super()._prepare(context)
        self._campaign_id = optional_int(self.campaign_id, "campaign_id")
        self._channel_unsubscribe = optional_bool(self.channel_unsubscribe, "channel_unsubscribe")

    def _send_batch(self, batch: list[dict[str, Any]]) -> Any:
        return self.hook.unsubscribe_from_list(
            self._list_id,
            batch,
            campaign_id=self._campaign_id,
            channel_unsubscribe=self._channel_unsubscribe,
        )
