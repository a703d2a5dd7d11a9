"""Shared pieces of the trigger and sensor tests: events to store, and Airflow's shared-stream driver."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Hashable
from typing import Any

from airflow.triggers.base import TriggerEvent
from airflow.triggers.shared_stream import SharedStreamManager

from airflow_provider_iterable.event_queue import NewEvent
from airflow_provider_iterable.triggers import IterableWebhookTrigger
from tests.event_queue.conftest import make_event


def new_event(
    *,
    conn_id: str = "iterable_default",
    kind: str = "system",
    event_name: str | None = "emailOpen",
    workflow_id: int | None = None,
    email: str | None = "ada@example.com",
    payload: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
) -> NewEvent:
    """Build an event as the receiver would store it; a unique body unless ``payload`` is given."""
    body = (
        payload
        if payload is not None
        else {
            "email": email,
            "eventName": event_name,
            "dataFields": {"messageId": uuid.uuid4().hex, "workflowId": workflow_id},
        }
    )
    return make_event(
        conn_id=conn_id,
        kind=kind,
        event_name=event_name,
        workflow_id=workflow_id,
        campaign_id=None,
        email=email,
        payload=body,
        query=query,
        dedupe_key=uuid.uuid4().hex,
    )


class InMemoryAssetStore:
    """The ``aget``/``aset`` surface of Airflow's asset state store, kept in a dict.

    Stands in for the triggerer's supervisor channel, which only exists inside a triggerer.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes: list[tuple[str, Any]] = []

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.writes.append((key, value))


class SharedStreamDriver:
    """Run triggers the way Airflow's triggerer does when they declare a shared stream.

    Mirrors ``TriggerRunner.run_trigger``: subscribe with the trigger's key, iterate
    ``filter_shared_stream``, bind each emitted event for the persistence acknowledgement, and
    unsubscribe when the trigger ends. ``confirm()`` plays the supervisor confirming persisted
    events.
    """

    def __init__(self, **manager_kwargs: Any) -> None:
        self.manager = SharedStreamManager(**manager_kwargs)
        self.events: dict[int, list[TriggerEvent]] = {}
        self.unconfirmed: list[int] = []
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._next_id = 1

    def start(self, trigger: IterableWebhookTrigger) -> int:
        trigger_id = self._next_id
        self._next_id += 1
        self.events[trigger_id] = []
        self.tasks[trigger_id] = asyncio.create_task(self._run(trigger_id, trigger))
        return trigger_id

    async def _run(self, trigger_id: int, trigger: IterableWebhookTrigger) -> None:
        key: Hashable = trigger.shared_stream_key()
        assert key is not None
        stream = self.manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
        try:
            async for event in trigger.filter_shared_stream(stream):
                seq = self.manager.bind_pending_event(trigger_id=trigger_id, key=key)
                if seq is not None:
                    self.unconfirmed.append(seq)
                self.events[trigger_id].append(event)
        finally:
            await self.manager.unsubscribe(trigger_id, key)

    def confirm(self) -> None:
        seqs, self.unconfirmed = self.unconfirmed, []
        self.manager.confirm_persisted(seqs)

    async def stop(self, trigger_id: int) -> None:
        task = self.tasks[trigger_id]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        for trigger_id in list(self.tasks):
            await self.stop(trigger_id)
        await self.manager.stop_all()


async def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return bool(predicate())
