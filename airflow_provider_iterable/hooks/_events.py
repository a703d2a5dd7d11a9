"""Events: track custom events, one at a time or in bulk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow_provider_iterable.hooks._arguments import (
    as_dict,
    require_identity,
    require_items,
    require_text,
)
from airflow_provider_iterable.hooks._base import IterableHookBase, endpoint
from airflow_provider_iterable.hooks._encoding import compact, epoch_seconds

__all__ = ["EventsApi"]


class EventsApi(IterableHookBase):
    """The ``/api/events`` endpoints of :class:`~airflow_provider_iterable.hooks.iterable.IterableHook`."""

    @endpoint("POST /api/events/track")
    def track_event(
        self,
        *,
        event_name: str,
        email: str | None = None,
        user_id: str | None = None,
        event_id: str | None = None,
        created_at: datetime | float | None = None,
        data_fields: Mapping[str, Any] | None = None,
        campaign_id: int | None = None,
        template_id: int | None = None,
        create_new_fields: bool | None = None,
    ) -> dict[str, Any]:
        """Track a custom event (``POST /api/events/track``).

        With an ``event_id`` a repeat updates the same event, so the call is retried after a read
        timeout or 5xx; without one a repeat would record the event twice, so it is not.

        :param event_name: the event's name.
        :param email: the user's e-mail address; ``email`` or ``user_id`` is required.
        :param user_id: the user's userId.
        :param event_id: the event's id (at most 512 bytes); the same id updates the event.
        :param created_at: when it happened: a datetime (naive means UTC) or Unix seconds.
        :param data_fields: the event's fields.
        :param campaign_id: campaign the event is attributed to.
        :param template_id: template the event is attributed to.
        :param create_new_fields: whether fields new to the project are added to its schema.
        :return: Iterable's envelope (``params.id`` holds the event id).

        .. seealso:: https://api.iterable.com/api/docs#events_track
        """
        require_text("track_event", "event_name", event_name)
        require_identity("track_event", email=email, user_id=user_id)
        body = compact(
            {
                "eventName": event_name,
                "email": email,
                "userId": user_id,
                "id": event_id,
                "createdAt": epoch_seconds(created_at) if created_at is not None else None,
                "dataFields": data_fields,
                "campaignId": campaign_id,
                "templateId": template_id,
                "createNewFields": create_new_fields,
            }
        )
        return as_dict(self._call("POST /api/events/track", body=body))

    @endpoint("POST /api/events/trackBulk")
    def track_events(self, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Track many events in one call (``POST /api/events/trackBulk``).

        Retried after a read timeout or 5xx only when every event carries an ``id``.

        :param events: events in Iterable's shape, ``{"eventName", "email" or "userId", "id", ...}``.
        :return: Iterable's bulk answer (plus ``disallowedEventNames``).

        .. seealso:: https://api.iterable.com/api/docs#events_trackBulk
        """
        body = {"events": require_items("track_events", "events", events)}
        return as_dict(self._call("POST /api/events/trackBulk", body=body))
