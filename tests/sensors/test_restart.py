"""R9: a triggerer restart loses nothing; the deferred sensor completes with the event posted meanwhile."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_iterable.sensors import IterableSystemWebhookSensor
from airflow_provider_iterable.triggers import IterableWebhookTrigger
from tests.sensors.conftest import CONNECTION, WEBHOOK_SECRET, Receiver
from tests.triggers.helpers import SharedStreamDriver, wait_until


@pytest.mark.parametrize("path", ["shared_stream", "standalone_run"])
def test_r9_defer_stop_post_rebuild_from_serialize(
    receiver: Receiver, queue_url: str, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setenv("AIRFLOW__ITERABLE__QUEUE_URL", queue_url)
    sensor = IterableSystemWebhookSensor(
        task_id="wait", event_name="smsSend", match={"email": "r9@example.com"}
    )
    context: Any = {"dag_run": SimpleNamespace(start_date=datetime.now(timezone.utc))}
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context)
    classpath, kwargs = deferred.value.trigger.serialize()
    stored_kwargs = json.loads(json.dumps(kwargs))  # what Airflow keeps in its database
    assert stored_kwargs == kwargs
    assert IterableWebhookTrigger(**stored_kwargs).serialize() == (classpath, kwargs)
    for secret in (WEBHOOK_SECRET, CONNECTION["password"], queue_url):
        assert str(secret) not in json.dumps(kwargs)

    async def first_life() -> None:
        driver = SharedStreamDriver()
        tid = driver.start(IterableWebhookTrigger(**stored_kwargs))
        await asyncio.sleep(0.8)
        assert not driver.events[tid]
        await driver.close()  # the triggerer goes away

    asyncio.run(asyncio.wait_for(first_life(), 20))
    receiver.post_system({"email": "other@example.com", "eventName": "smsSend", "dataFields": {}})
    answer = receiver.post_system({"email": "r9@example.com", "eventName": "smsSend", "dataFields": {"n": 1}})
    assert answer.status_code == 200

    async def second_life() -> dict[str, Any]:
        trigger = IterableWebhookTrigger(**stored_kwargs)  # another triggerer rebuilds it
        if path == "standalone_run":
            gen = trigger.run()
            try:
                return (await asyncio.wait_for(gen.__anext__(), 10)).payload
            finally:
                await gen.aclose()
        driver = SharedStreamDriver()
        try:
            tid = driver.start(trigger)
            assert await wait_until(lambda: bool(driver.events[tid]), 10)
            return driver.events[tid][0].payload
        finally:
            await driver.close()

    payload = asyncio.run(asyncio.wait_for(second_life(), 30))
    result = sensor.execute_complete(context, payload)
    assert result["payload"] == {"email": "r9@example.com", "eventName": "smsSend", "dataFields": {"n": 1}}
    assert result["kind"] == "system" and result["conn_id"] == "iterable_default"
