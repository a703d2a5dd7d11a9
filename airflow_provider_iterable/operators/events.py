"""Operators that track custom events in Iterable, one at a time or in bulk."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Context

from airflow_provider_iterable.operators._base import (
    IterableBaseOperator,
    epoch_seconds,
    fail,
    one_of,
    optional_bool,
    optional_dict,
    optional_int,
    optional_str,
    required_str,
)
from airflow_provider_iterable.operators._bulk import IterableBulkBaseOperator
from airflow_provider_iterable.operators._records import EVENT_SHAPE

# Iterable refuses event ids longer than 512 bytes.
_MAX_EVENT_ID_BYTES = 512


def task_event_id(context: Context, *suffix: object) -> str | None:
    """Return an event id derived from the task instance, the same on every try of the task.

    Iterable updates the event with an ``id`` it has already seen instead of adding another, so a
    task retry (or a repeated request after a timeout) never counts the event twice.

    :param context: the task's context; ``None`` is returned when it has no task instance.
    :param suffix: extra parts, e.g. the position of an event in a bulk input.
    """
    ti = context.get("ti")
    if ti is None:
        return None
    parts = [ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1), *suffix]
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class IterableTrackEventOperator(IterableBaseOperator):
    """Track one custom event for a user (``POST /api/events/track``).

    Without ``event_id`` the operator sends an id derived from the task instance (DAG id, task id,
    run id and map index), so a retry of the task updates the same event rather than tracking it
    twice, and the hook may safely repeat the request after a timeout.

    .. seealso:: https://api.iterable.com/api/docs#events_track

    :param event_name: the event's name (templated).
    :param email: the user's e-mail address (templated). Set ``email`` or ``user_id``, not both.
    :param user_id: the user's userId (templated).
    :param data_fields: the event's fields (templated).
    :param event_id: the event's id (templated; at most 512 bytes). Default: derived from the task
        instance as above.
    :param created_at: when it happened: a datetime (naive means UTC), an ISO-8601 string or unix
        seconds (templated). Default: when Iterable receives it.
    :param campaign_id: campaign the event is attributed to.
    :param template_id: template the event is attributed to.
    :param create_new_fields: whether fields unknown to the project are created.
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: Iterable's envelope (``params.id`` holds the event id).
    """

    template_fields: Sequence[str] = (
        "event_name",
        "email",
        "user_id",
        "data_fields",
        "event_id",
        "created_at",
        "campaign_id",
        "template_id",
    )
    template_fields_renderers = {"data_fields": "json"}
    ui_color = "#fdf3e1"

    def __init__(
        self,
        *,
        event_name: str,
        email: str | None = None,
        user_id: str | None = None,
        data_fields: Mapping[str, Any] | None = None,
        event_id: str | None = None,
        created_at: Any = None,
        campaign_id: int | None = None,
        template_id: int | None = None,
        create_new_fields: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.event_name = event_name
        self.email = email
        self.user_id = user_id
        self.data_fields = data_fields
        self.event_id = event_id
        self.created_at = created_at
        self.campaign_id = campaign_id
        self.template_id = template_id
        self.create_new_fields = create_new_fields

    def execute(self, context: Context) -> Any:
        """Track the event; return Iterable's envelope."""
        event_name = required_str(self.event_name, "event_name")
        identity = one_of(email=self.email, user_id=self.user_id)
        event_id = optional_str(self.event_id, "event_id")
        if event_id is not None and len(event_id.encode("utf-8")) > _MAX_EVENT_ID_BYTES:
            raise fail(f"event_id must be at most {_MAX_EVENT_ID_BYTES} bytes, got {len(event_id.encode())}")
        if event_id is None:
            event_id = task_event_id(context)
        kwargs: dict[str, Any] = {
            **identity,
            "event_name": event_name,
            "event_id": event_id,
            "created_at": epoch_seconds(self.created_at, "created_at"),
            "data_fields": optional_dict(self.data_fields, "data_fields"),
            "campaign_id": optional_int(self.campaign_id, "campaign_id"),
            "template_id": optional_int(self.template_id, "template_id"),
            "create_new_fields": optional_bool(self.create_new_fields, "create_new_fields"),
        }
        with self._iterable_errors(f"tracking the event {event_name!r}"):
            return self.hook.track_event(**kwargs)


class IterableTrackBulkEventsOperator(IterableBulkBaseOperator):
    """Track many custom events (``POST /api/events/trackBulk``), in batches.

    Events are Iterable-shaped track bodies (``{"eventName": ..., "email": ..., "dataFields":
    {...}, "createdAt": <unix seconds>, "id": ...}``), given as ``events`` (a list or an XCom of
    one) or streamed from ``events_file``: JSON Lines, or CSV whose ``eventName``, ``email``,
    ``userId``, ``id``, ``createdAt``, ``campaignId`` and ``templateId`` columns are top-level
    fields and whose other columns go into ``dataFields`` (typed by ``field_types``). Batching,
    progress and failure reporting are as for
    :class:`~airflow_provider_iterable.operators.IterableBulkUpsertUsersOperator`; event names
    Iterable refuses are reported as ``disallowedEventNames`` and count as a failure.

    An event without an ``id`` gets one derived from the task instance and its position in the
    input (with ``derive_event_ids``, the default), so retrying the task does not track it twice.

    .. seealso:: https://api.iterable.com/api/docs#events_trackBulk

    :param events: the events (templated).
    :param events_file: path or URI of a JSON Lines or CSV file (templated).
    :param derive_event_ids: give events without an ``id`` a deterministic one (default ``True``).
    :param iterable_conn_id: the Iterable connection (default ``iterable_default``).
    :return: the bulk summary plus ``"disallowedEventNames"``.
    """

    template_fields: Sequence[str] = ("events", "events_file", "file_format")
    ui_color = "#fdf3e1"
    shape = EVENT_SHAPE
    items_param = "events"
    file_param = "events_file"
    summarise_events = True

    def __init__(
        self,
        *,
        events: Sequence[Mapping[str, Any]] | None = None,
        events_file: str | None = None,
        derive_event_ids: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.events = events
        self.events_file = events_file
        self.derive_event_ids = derive_event_ids

    def _prepare(self, context: Context) -> None:
        self._context = context if optional_bool(self.derive_event_ids, "derive_event_ids") else None

    def _transform(self, record: dict[str, Any], index: int) -> dict[str, Any]:
        if self._context is None or record.get("id"):
            return record
        event_id = task_event_id(self._context, index)
        return record if event_id is None else {**record, "id": event_id}

    def _send_batch(self, batch: list[dict[str, Any]]) -> Any:
        return self.hook.track_events(batch)
