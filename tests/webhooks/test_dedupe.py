"""R2: duplicates are absorbed, on SQLite and PostgreSQL, by a real receiver process."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from airflow_provider_iterable.event_queue import EventQueue
from airflow_provider_iterable.webhooks.classify import dedupe_key
from tests.webhooks.conftest import CONN_ID, ReceiverProcess, auth_headers, system_body

PATH = f"/webhooks/{CONN_ID}/system"


def send_raw(url: str, raw: bytes, path: str = PATH) -> httpx.Response:
    return httpx.post(
        url + path, content=raw, headers={"Content-Type": "application/json", **auth_headers()}, timeout=30
    )


def test_duplicates_are_stored_once(receiver: ReceiverProcess) -> None:
    body = system_body(7, userId="u-7")
    raw = json.dumps(body).encode()

    # Five times in a row.
    answers = [send_raw(receiver.url, raw) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    first_id = answers[0].json()["id"]
    assert answers[0].json()["status"] == "stored"
    assert all(a.json() == {"status": "duplicate", "id": first_id} for a in answers[1:])

    # Re-serialised: other key order, other spacing, escaped characters.
    variants = [
        json.dumps(dict(reversed(list(body.items())))).encode(),
        json.dumps(body, indent=4, sort_keys=True).encode(),
        json.dumps(body, separators=(",", ":")).encode(),
        json.dumps(body, ensure_ascii=True).replace("@", "\\u0040").encode(),
        b"  \n" + raw + b"\n\t ",
    ]
    for variant in variants:
        assert variant != raw
        answer = send_raw(receiver.url, variant)
        assert answer.json() == {"status": "duplicate", "id": first_id}, variant

    # Twenty at once, of a new body.
    other = json.dumps(system_body(8)).encode()
    with ThreadPoolExecutor(20) as pool:
        burst = list(pool.map(lambda _: send_raw(receiver.url, other), range(20)))
    assert {a.status_code for a in burst} == {200}
    assert len({a.json()["id"] for a in burst}) == 1
    assert sorted(a.json()["status"] for a in burst).count("stored") == 1

    # A different query string or connection-visible change is a different event.
    assert send_raw(receiver.url, raw, path=PATH + "?campaignId=5").json()["status"] == "stored"
    changed = {**body, "dataFields": {**body["dataFields"], "templateId": 2003}}
    assert send_raw(receiver.url, json.dumps(changed).encode()).json()["status"] == "stored"

    queue = EventQueue(receiver.queue_url)
    try:
        events = queue.fetch()
    finally:
        queue.close()
    assert len(events) == 4
    assert events[0].payload == body


def test_journey_duplicates_depend_on_the_journey_id(receiver: ReceiverProcess) -> None:
    body = {"email": "j@example.com", "step": "welcome"}
    journeys = f"/webhooks/{CONN_ID}/journeys"
    first = httpx.post(f"{receiver.url}{journeys}/11", json=body, headers=auth_headers(), timeout=30)
    again = httpx.post(
        f"{receiver.url}{journeys}?workflowId=11", json=body, headers=auth_headers(), timeout=30
    )
    other = httpx.post(f"{receiver.url}{journeys}/12", json=body, headers=auth_headers(), timeout=30)
    assert first.json()["status"] == "stored"
    # The query string is part of the key, so the same id given another way is another delivery.
    assert again.json()["status"] == "stored"
    assert other.json()["status"] == "stored"
    repeat = httpx.post(f"{receiver.url}{journeys}/11", json=body, headers=auth_headers(), timeout=30)
    assert repeat.json() == {"status": "duplicate", "id": first.json()["id"]}


def test_dedupe_key_is_canonical() -> None:
    payload = {"b": [1, {"y": 2, "x": 1}], "a": "é"}
    reordered = {"a": "é", "b": [1, {"x": 1, "y": 2}]}
    key = dedupe_key("c", "system", None, {"q": "1"}, payload)
    assert key == dedupe_key("c", "system", None, {"q": "1"}, reordered)
    assert len(key) == 64
    assert key != dedupe_key("c", "system", None, {"q": "2"}, payload)
    assert key != dedupe_key("d", "system", None, {"q": "1"}, payload)
    assert key != dedupe_key("c", "journey", 5, {"q": "1"}, payload)
    assert dedupe_key("c", "journey", 5, {}, payload) != dedupe_key("c", "journey", 6, {}, payload)
    # List order is data, not formatting.
    assert key != dedupe_key("c", "system", None, {"q": "1"}, {"a": "é", "b": [{"x": 1, "y": 2}, 1]})
