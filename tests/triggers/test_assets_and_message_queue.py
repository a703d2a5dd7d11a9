"""The asset helper, and MessageQueueTrigger(scheme="iterable") through the common.messaging provider."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk import Asset, AssetWatcher

from airflow_provider_iterable.assets import iterable_webhook_asset, webhook_events
from airflow_provider_iterable.event_queue import EventQueue
from airflow_provider_iterable.queues.iterable import IterableMessageQueueProvider
from airflow_provider_iterable.triggers import IterableWebhookTrigger
from tests.triggers.helpers import new_event


def test_the_short_asset_watcher_form_works() -> None:
    asset = Asset(
        "iterable_email_opens",
        watchers=[AssetWatcher(name="opens", trigger=IterableWebhookTrigger(event_name="emailOpen"))],
    )
    assert asset.watchers[0].trigger.serialize()[1]["event_name"] == "emailOpen"


def test_iterable_webhook_asset_builds_a_watched_asset() -> None:
    asset = iterable_webhook_asset("journey_3001", workflow_id=3001, kind="journey", poll_interval=1.0)
    assert asset.name == "journey_3001" and asset.uri == "journey_3001"
    (watcher,) = asset.watchers
    assert watcher.name == "journey_3001_watcher"
    _, kwargs = watcher.trigger.serialize()
    assert kwargs["workflow_id"] == 3001 and kwargs["kind"] == "journey" and kwargs["poll_interval"] == 1.0
    assert kwargs["mode"] == "auto" and kwargs["queue_url"] is None
    with pytest.raises(ValueError, match="kind"):
        iterable_webhook_asset("bad", kind="email")


def test_webhook_events_reads_asset_event_extras_dedupes_and_sorts() -> None:
    def asset_event(event_id: int) -> SimpleNamespace:
        return SimpleNamespace(
            extra={"from_trigger": True, "payload": {"status": "success", "event": {"id": event_id, "x": 1}}}
        )

    events = [asset_event(5), asset_event(3), asset_event(5), SimpleNamespace(extra={"manual": True})]
    assert [e["id"] for e in webhook_events(events)] == [3, 5]
    assert webhook_events([{"payload": {"status": "success", "event": {"id": 1}}}]) == [{"id": 1}]


def test_message_queue_trigger_resolves_the_iterable_scheme(tmp_path: Path) -> None:
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    url = f"sqlite:///{tmp_path / 'events.db'}"
    assert IterableMessageQueueProvider().scheme_matches("iterable")
    assert not IterableMessageQueueProvider().scheme_matches("sqs")
    assert IterableMessageQueueProvider().trigger_class() is IterableWebhookTrigger
    trigger = MessageQueueTrigger(scheme="iterable", event_name="emailOpen", queue_url=url, after_id=0)
    classpath, kwargs = trigger.serialize()
    # Airflow stores (and the triggerer runs) the Iterable trigger itself.
    assert classpath == "airflow_provider_iterable.triggers.webhook.IterableWebhookTrigger"
    assert kwargs == IterableWebhookTrigger(event_name="emailOpen", queue_url=url, after_id=0).serialize()[1]
    with EventQueue(url) as queue:
        queue.append(new_event(event_name="emailClick"))
        stored, _ = queue.append(new_event(event_name="emailOpen"))

    async def first() -> dict:
        gen = trigger.run()
        try:
            event = await asyncio.wait_for(gen.__anext__(), 10)
        finally:
            await gen.aclose()
        return event.payload

    payload = asyncio.run(first())
    assert payload["status"] == "success" and payload["event"]["id"] == stored
    # As an asset watcher, in the short form.
    Asset("opens", watchers=[AssetWatcher(name="w", trigger=MessageQueueTrigger(scheme="iterable"))])
