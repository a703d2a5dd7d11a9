"""Event-driven DAG runs from Iterable webhooks: an asset with a watcher, and its events in a run.

::

    from airflow.sdk import DAG, task
    from airflow_provider_iterable.assets import iterable_webhook_asset, webhook_events

    opens = iterable_webhook_asset("iterable_email_opens", event_name="emailOpen")

    with DAG("react_to_opens", schedule=[opens]):

        @task
        def handle(*, triggering_asset_events=None):
            for event in webhook_events(triggering_asset_events[opens]):
                print(event["id"], event["email"])

Each matching webhook becomes one asset event whose ``extra`` carries the stored event
(``extra["payload"]["event"]``, with its queue ``id``). Airflow may fold several asset events
into one DAG run, so a run loops over all of them; delivery is at-least-once (the event in flight
when a triggerer dies may come twice), so :func:`webhook_events` drops repeated ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow.sdk import Asset, AssetWatcher

from airflow_provider_iterable.triggers.webhook import IterableWebhookTrigger


def iterable_webhook_asset(
    name: str,
    *,
    event_name: str | None = None,
    workflow_id: int | None = None,
    kind: str | None = None,
    match: dict[str, Any] | None = None,
    iterable_conn_id: str = "iterable_default",
    uri: str | None = None,
    watcher_name: str | None = None,
    **trigger_kwargs: Any,
) -> Asset:
    """Return an :class:`~airflow.sdk.Asset` updated by every matching Iterable webhook.

    :param name: The asset's name (its URI too, unless ``uri`` is given).
    :param event_name: The payload's ``eventName``, e.g. ``emailOpen``.
    :param workflow_id: A journey event's id, or a system event's ``dataFields.workflowId``.
    :param kind: ``"system"``, ``"journey"`` or ``None`` for either.
    :param match: Dotted payload path -> expected value (as for the sensors).
    :param iterable_conn_id: The connection (Iterable project) whose webhooks count.
    :param uri: The asset's URI; default the name.
    :param watcher_name: The watcher's name; default ``<name>_watcher``.
    :param trigger_kwargs: Further :class:`IterableWebhookTrigger` arguments (``poll_interval``,
        ``consumer``, ...).
    """
    trigger = IterableWebhookTrigger(
        iterable_conn_id=iterable_conn_id,
        kind=kind,
        event_name=event_name,
        workflow_id=workflow_id,
        match=match,
        **trigger_kwargs,
    )
    watcher = AssetWatcher(name=watcher_name or f"{name}_watcher", trigger=trigger)
    if uri is None:
        return Asset(name=name, watchers=[watcher])
    return Asset(name=name, uri=uri, watchers=[watcher])


def webhook_events(asset_events: Iterable[Any]) -> list[dict[str, Any]]:
    """Return the webhook events carried by asset events, oldest first, each id once.

    :param asset_events: ``triggering_asset_events[asset]`` (objects with an ``extra`` mapping),
        or the ``extra`` mappings themselves.
    """
    by_id: dict[int, dict[str, Any]] = {}
    for asset_event in asset_events:
        extra = asset_event if isinstance(asset_event, Mapping) else getattr(asset_event, "extra", None)
        payload = (extra or {}).get("payload")
        if not isinstance(payload, Mapping):
            continue
        event = payload.get("event")
        if payload.get("status") == "success" and isinstance(event, Mapping) and "id" in event:
            by_id.setdefault(int(event["id"]), dict(event))
    return [by_id[key] for key in sorted(by_id)]


__all__ = ["iterable_webhook_asset", "webhook_events"]
