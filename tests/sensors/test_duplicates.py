"""R2 from the sensor's side: Iterable's retries of one webhook wake a waiting sensor once."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import httpx

from airflow_provider_iterable.event_queue import EventQueue
from airflow_provider_iterable.triggers import IterableWebhookTrigger
from tests.sensors.conftest import WEBHOOK_SECRET, Receiver
from tests.triggers.helpers import SharedStreamDriver, wait_until


def test_r2_the_same_webhook_many_times_wakes_each_sensor_once(receiver: Receiver, queue_url: str) -> None:
    body = {
        "email": "dup@example.com",
        "eventName": "emailOpen",
        "dataFields": {"campaignId": 1001, "x": [1, 2]},
    }
    variants = [
        json.dumps(body).encode(),
        json.dumps(body, indent=2, sort_keys=True).encode(),  # other key order and spacing
        json.dumps(
            {
                "dataFields": {"x": [1, 2], "campaignId": 1001},
                "eventName": "emailOpen",
                "email": "dup@example.com",
            }
        ).encode(),
    ]
    url = f"{receiver.url}/webhooks/iterable_default/system"
    headers = {"Authorization": WEBHOOK_SECRET, "Content-Type": "application/json"}

    def post(content: bytes) -> int:
        return httpx.post(url, content=content, headers=headers, timeout=20).status_code

    async def scenario() -> tuple[list[int], dict[int, list[int]]]:
        driver = SharedStreamDriver()
        since = datetime.now(timezone.utc).isoformat()
        try:
            ids = [
                driver.start(
                    IterableWebhookTrigger(
                        queue_url=queue_url, since=since, match={"email": "dup@example.com"}
                    )
                )
                for _ in range(2)
            ]
            await asyncio.sleep(0.5)
            statuses = [await asyncio.to_thread(post, variants[i % 3]) for i in range(5)]
            with ThreadPoolExecutor(max_workers=20) as pool:
                statuses += await asyncio.gather(
                    *(asyncio.wrap_future(pool.submit(post, variants[i % 3])) for i in range(20))
                )
            assert await wait_until(lambda: all(driver.events[t] for t in ids), 10)
            await asyncio.sleep(1.0)  # any second wake-up would arrive now
            got = {t: [e.payload["event"]["id"] for e in driver.events[t]] for t in ids}
            return statuses, got
        finally:
            await driver.close()

    statuses, got = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert statuses == [200] * 25
    with EventQueue(queue_url) as queue:
        rows = [e for e in queue.fetch(after_id=0) if e.email == "dup@example.com"]
    assert len(rows) == 1
    assert list(got.values()) == [[rows[0].id], [rows[0].id]]
