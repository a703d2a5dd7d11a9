"""IterableWebhookTrigger against a real SQLite event queue (events written with EventQueue.append)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_iterable._values import lookup_path
from airflow_provider_iterable.event_queue import EventQueue, WebhookFilter
from airflow_provider_iterable.event_queue.filters import values_match
from airflow_provider_iterable.triggers import IterableWebhookTrigger
from airflow_provider_iterable.triggers.shared_stream import QueueStreamProducer, StreamStart
from airflow_provider_iterable.triggers.watcher_cursor import CURSOR_KEY_PREFIX, default_consumer_name
from tests.triggers.helpers import InMemoryAssetStore, SharedStreamDriver, new_event, wait_until

CLASSPATH = "airflow_provider_iterable.triggers.webhook.IterableWebhookTrigger"


@pytest.fixture
def queue_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


@pytest.fixture
def queue(queue_url: str) -> Iterator[EventQueue]:
    with EventQueue(queue_url) as q:
        q.head_id()  # the schema exists before any trigger reads (the receiver creates it)
        yield q


def run(coro: Any, timeout: float = 30.0) -> Any:
    """Run a coroutine with a hard timeout (a hung trigger must fail the test, not hang it)."""

    async def guarded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


async def next_event(trigger: IterableWebhookTrigger, timeout: float = 10.0) -> dict[str, Any]:
    gen = trigger.run()
    try:
        event = await asyncio.wait_for(gen.__anext__(), timeout)
    finally:
        await gen.aclose()
    assert event.payload["status"] == "success"
    return event.payload["event"]


# -- arguments and serialisation -----------------------------------------------------------------


def test_serialize_round_trips_exactly() -> None:
    trigger = IterableWebhookTrigger(
        iterable_conn_id="iterable_eu",
        kind="journey",
        event_name="journeyTile",
        workflow_id=3001,
        match={"dataFields.campaignId": 42, "email": "ada@example.com"},
        since="2026-11-27T03:00:00+00:00",
        after_id=17,
        poll_interval=0.5,
        mode="sensor",
        consumer="c1",
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    rebuilt = IterableWebhookTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["queue_url"] is None


def test_defaults_are_constants_so_the_watcher_hash_is_stable() -> None:
    first = IterableWebhookTrigger(event_name="emailOpen")
    second = IterableWebhookTrigger(event_name="emailOpen")
    assert first.serialize() == second.serialize()
    assert BaseEventTrigger.hash(*first.serialize()) == BaseEventTrigger.hash(*second.serialize())
    _, kwargs = first.serialize()
    assert kwargs == {
        "iterable_conn_id": "iterable_default",
        "kind": None,
        "event_name": "emailOpen",
        "workflow_id": None,
        "match": None,
        "since": None,
        "after_id": None,
        "poll_interval": 0.2,
        "queue_url": None,
        "mode": "auto",
        "consumer": None,
    }


def test_no_secret_in_kwargs_or_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    secret_url = "postgresql+psycopg://airflow:s3cr3t-pw@db:5432/iterable"
    monkeypatch.setenv("AIRFLOW__ITERABLE__QUEUE_URL", secret_url)
    trigger = IterableWebhookTrigger(event_name="emailOpen")
    assert "s3cr3t-pw" not in repr(trigger.serialize())
    explicit = IterableWebhookTrigger(event_name="emailOpen", queue_url=secret_url)
    assert "s3cr3t-pw" not in repr(explicit)
    assert "s3cr3t-pw" not in repr(explicit.shared_stream_key())


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"iterable_conn_id": ""}, "iterable_conn_id"),
        ({"kind": "sms"}, "kind"),
        ({"event_name": ""}, "event_name"),
        ({"workflow_id": "3001"}, "workflow_id"),
        ({"workflow_id": True}, "workflow_id"),
        ({"match": ["email"]}, "match"),
        ({"match": {"": 1}}, "match"),
        ({"since": "yesterday"}, "since"),
        ({"after_id": -1}, "after_id"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"mode": "consume"}, "mode"),
        ({"consumer": " "}, "consumer"),
        ({"queue_url": ""}, "queue_url"),
        ({"deadline": "tomorrow"}, "deadline"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        IterableWebhookTrigger(**kwargs)


# -- matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "expected", "result"),
    [
        (42, 42, True),
        (42.0, 42, True),
        ("42", 42, True),
        (" 42 ", 42, True),
        ("42.5", 42.5, True),
        ("43", 42, False),
        ("abc", 42, False),
        ("true", True, True),
        ("false", False, True),
        ("true", False, False),
        (True, True, True),
        (1, True, False),
        (True, 1, False),
        ("42", "42", True),
        (42, "42", True),  # a templated expected value renders as a string
        (True, "true", True),
        (42, "43", False),
        (None, "None", False),
        (None, None, True),
        ("", None, False),
        ({"a": "1"}, {"a": 1}, True),
        ({"a": 1, "b": 2}, {"a": 1}, False),
        (["1", "2"], [1, 2], True),
        (["1"], "1", False),
    ],
)
def test_values_match(actual: Any, expected: Any, result: bool) -> None:
    assert values_match(actual, expected) is result


def test_lookup_path_walks_dicts_and_lists() -> None:
    payload = {"dataFields": {"items": [{"sku": "A"}]}, "email": "a@x"}
    assert lookup_path(payload, "dataFields.items.0.sku") == "A"
    assert lookup_path(payload, "email") == "a@x"
    assert lookup_path(payload, "dataFields.items.1.sku") is not None  # the missing marker
    assert not values_match(lookup_path(payload, "dataFields.nope"), None)


def test_poll_once_applies_every_filter(queue: EventQueue, queue_url: str) -> None:
    queue.append(new_event(event_name="emailOpen", email="a@example.com"))
    queue.append(new_event(event_name="emailClick", email="a@example.com"))
    queue.append(new_event(event_name="emailOpen", email="b@example.com", conn_id="iterable_eu"))
    journey_id, _ = queue.append(
        new_event(kind="journey", event_name=None, workflow_id=3001, payload={"email": "c@x", "score": "7"})
    )
    system_in_journey, _ = queue.append(new_event(event_name="emailSend", workflow_id=3001))
    queue.append(new_event(kind="journey", event_name=None, workflow_id=3002, payload={"score": "7"}))

    def ids(**kwargs: Any) -> list[int]:
        trigger = IterableWebhookTrigger(queue_url=queue_url, **kwargs)
        return [e.id for e in run(trigger.poll_once())]

    assert ids(event_name="emailOpen") == [1]
    assert ids(event_name="emailOpen", iterable_conn_id="iterable_eu") == [3]
    assert ids(kind="journey") == [journey_id, 6]
    assert ids(workflow_id=3001) == [journey_id, system_in_journey]
    assert ids(kind="journey", workflow_id=3001) == [journey_id]
    assert ids(kind="journey", match={"score": 7}) == [journey_id, 6]
    assert ids(kind="journey", match={"score": 8}) == []
    assert ids(match={"email": "a@example.com"}) == [1, 2]
    assert ids(match={"dataFields.nothing": None}) == []
    assert ids(event_name="emailOpen", after_id=1) == []
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert ids(event_name="emailOpen", since=future) == []
    past = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    assert ids(event_name="emailOpen", since=past) == [1]


def test_poll_once_pages_through_a_long_window(queue: EventQueue, queue_url: str) -> None:
    queue.append_many([new_event(event_name="noise") for _ in range(1200)])
    wanted, _ = queue.append(new_event(event_name="emailOpen"))
    trigger = IterableWebhookTrigger(queue_url=queue_url, match={"eventName": "emailOpen"})
    assert [e.id for e in run(trigger.poll_once())] == [wanted]


# -- sensor mode, standalone loop ----------------------------------------------------------------


def test_sensor_run_yields_an_event_posted_after_it_started(queue: EventQueue, queue_url: str) -> None:
    since = datetime.now(timezone.utc).isoformat()
    queue.append(new_event(event_name="emailClick"))
    trigger = IterableWebhookTrigger(queue_url=queue_url, event_name="emailOpen", since=since)

    async def scenario() -> dict[str, Any]:
        waiter = asyncio.create_task(next_event(trigger))
        await asyncio.sleep(0.5)
        assert not waiter.done()
        stored, _ = await asyncio.to_thread(queue.append, new_event(event_name="emailOpen"))
        event = await waiter
        assert event["id"] == stored
        return event

    event = run(scenario())
    assert event["event_name"] == "emailOpen" and event["kind"] == "system"


def test_sensor_run_without_window_sees_only_new_events(queue: EventQueue, queue_url: str) -> None:
    queue.append(new_event(event_name="emailOpen"))
    trigger = IterableWebhookTrigger(queue_url=queue_url, event_name="emailOpen")

    async def scenario() -> int:
        waiter = asyncio.create_task(next_event(trigger))
        await asyncio.sleep(0.5)
        assert not waiter.done()
        stored, _ = await asyncio.to_thread(queue.append, new_event(event_name="emailOpen"))
        assert (await waiter)["id"] == stored
        return stored

    assert run(scenario()) == 2


def test_a_failing_poll_is_retried_and_never_ends_the_trigger(tmp_path: Path) -> None:
    """The queue cannot be opened at first (its path is a directory); the trigger keeps trying."""
    path = tmp_path / "events.db"
    path.mkdir()
    url = f"sqlite:///{path}"
    trigger = IterableWebhookTrigger(queue_url=url, event_name="emailOpen", after_id=0)

    async def scenario() -> dict[str, Any]:
        waiter = asyncio.create_task(next_event(trigger, timeout=20))
        await asyncio.sleep(1.5)
        assert not waiter.done()
        path.rmdir()
        await asyncio.to_thread(lambda: EventQueue(url).append(new_event(event_name="emailOpen")))
        return await waiter

    assert run(scenario())["id"] == 1


def test_a_deadline_travels_in_the_kwargs_only_when_set() -> None:
    deadline = "2026-11-27T03:00:00+00:00"
    trigger = IterableWebhookTrigger(event_name="emailOpen", mode="sensor", deadline=deadline)
    _, kwargs = trigger.serialize()
    assert kwargs["deadline"] == deadline
    assert IterableWebhookTrigger(**kwargs).serialize()[1] == kwargs  # a restarted triggerer keeps it
    assert "deadline" not in IterableWebhookTrigger(event_name="emailOpen").serialize()[1]


def test_a_sensor_stops_waiting_at_its_deadline(queue: EventQueue, queue_url: str) -> None:
    """Standalone run(), as under dag.test(): no match by the deadline means a timeout event."""
    since = datetime.now(timezone.utc).isoformat()
    deadline = (datetime.now(timezone.utc) + timedelta(seconds=1.5)).isoformat()
    trigger = IterableWebhookTrigger(
        queue_url=queue_url, event_name="emailOpen", since=since, deadline=deadline
    )

    async def scenario() -> tuple[Any, float]:
        started = time.monotonic()
        gen = trigger.run()
        try:
            event = await asyncio.wait_for(gen.__anext__(), 10)
        finally:
            await gen.aclose()
        return event.payload, time.monotonic() - started

    queue.append(new_event(event_name="emailClick"))
    payload, waited = run(scenario())
    assert payload == {"status": "timeout", "deadline": deadline}
    assert 1.0 <= waited < 5


def test_a_match_before_the_deadline_wins(queue: EventQueue, queue_url: str) -> None:
    since = datetime.now(timezone.utc).isoformat()
    deadline = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat()
    trigger = IterableWebhookTrigger(
        queue_url=queue_url, event_name="emailOpen", since=since, deadline=deadline
    )
    stored, _ = queue.append(new_event(event_name="emailOpen"))
    assert run(next_event(trigger))["id"] == stored


def test_a_shared_stream_sensor_stops_waiting_at_its_deadline(queue: EventQueue, queue_url: str) -> None:
    async def scenario() -> None:
        driver = SharedStreamDriver()
        try:
            since = datetime.now(timezone.utc).isoformat()
            soon = (datetime.now(timezone.utc) + timedelta(seconds=1)).isoformat()
            later = (datetime.now(timezone.utc) + timedelta(seconds=60)).isoformat()
            ending = driver.start(IterableWebhookTrigger(queue_url=queue_url, since=since, deadline=soon))
            waiting = driver.start(
                IterableWebhookTrigger(
                    queue_url=queue_url, since=since, deadline=later, event_name="emailOpen"
                )
            )
            await asyncio.wait_for(driver.tasks[ending], 10)  # the trigger ended by itself
            assert [e.payload for e in driver.events[ending]] == [{"status": "timeout", "deadline": soon}]
            # The other sensor on the same stream still waits, and still wakes.
            assert not driver.tasks[waiting].done()
            stored, _ = await asyncio.to_thread(queue.append, new_event(event_name="emailOpen"))
            assert await wait_until(lambda: bool(driver.events[waiting]), 5)
            assert driver.events[waiting][0].payload["event"]["id"] == stored
        finally:
            await driver.close()

    run(scenario())


# -- watcher mode, standalone loop ---------------------------------------------------------------


def test_watcher_run_starts_at_head_yields_each_match_and_keeps_a_cursor(
    queue: EventQueue, queue_url: str
) -> None:
    queue.append(new_event(event_name="emailOpen"))  # history: never replayed
    trigger = IterableWebhookTrigger(queue_url=queue_url, event_name="emailOpen", mode="watcher")
    consumer = trigger.consumer_name
    assert consumer == default_consumer_name(trigger.serialize()[1])

    async def scenario() -> list[int]:
        got: list[int] = []
        gen = trigger.run()

        async def consume() -> None:
            async for event in gen:
                got.append(event.payload["event"]["id"])

        task = asyncio.create_task(consume())
        await wait_until(lambda: queue.get_cursor(consumer) == 1, 5)
        for name in ("emailOpen", "emailClick", "emailOpen"):
            await asyncio.to_thread(queue.append, new_event(event_name=name))
        assert await wait_until(lambda: len(got) == 2, 10)
        await asyncio.sleep(1.0)  # idle: nothing may fire again
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await gen.aclose()
        return got

    assert run(scenario()) == [2, 4]
    assert queue.get_cursor(consumer) == 4

    # A rebuilt watcher resumes at its cursor: what arrived while it was down, nothing earlier.
    queue.append(new_event(event_name="emailOpen"))
    rebuilt = IterableWebhookTrigger(**trigger.serialize()[1])
    assert run(next_event(rebuilt))["id"] == 5


# -- shared streams (the triggerer's path) -------------------------------------------------------


def test_shared_stream_sensors_share_one_poll_and_all_complete(queue: EventQueue, queue_url: str) -> None:
    since = datetime.now(timezone.utc).isoformat()
    early, _ = queue.append(new_event(event_name="emailOpen", email="early@example.com"))

    async def scenario() -> None:
        driver = SharedStreamDriver()
        try:
            sensors = {
                "early": IterableWebhookTrigger(
                    queue_url=queue_url, since=since, match={"email": "early@example.com"}
                ),
                "a1": IterableWebhookTrigger(
                    queue_url=queue_url, since=since, match={"email": "a@example.com"}
                ),
                "a2": IterableWebhookTrigger(
                    queue_url=queue_url, since=since, match={"email": "a@example.com"}
                ),
                "b": IterableWebhookTrigger(
                    queue_url=queue_url, since=since, match={"email": "b@example.com"}
                ),
            }
            keys = {t.shared_stream_key() for t in sensors.values()}
            assert len(keys) == 1
            ids = {name: driver.start(t) for name, t in sensors.items()}
            assert await wait_until(lambda: len(driver.events[ids["early"]]) == 1, 5)
            assert driver.manager._groups and len(driver.manager._groups) == 1
            a, _ = await asyncio.to_thread(queue.append, new_event(email="a@example.com"))
            assert await wait_until(lambda: all(driver.events[ids[n]] for n in ("a1", "a2")), 5)
            assert not driver.events[ids["b"]]
            b, _ = await asyncio.to_thread(queue.append, new_event(email="b@example.com"))
            assert await wait_until(lambda: driver.events[ids["b"]] != [], 5)
            got = {name: [e.payload["event"]["id"] for e in driver.events[tid]] for name, tid in ids.items()}
            assert got == {"early": [early], "a1": [a], "a2": [a], "b": [b]}
            # Every sensor finished: the shared poll stops with the last one.
            await asyncio.gather(*driver.tasks.values())
            assert not driver.manager._groups
        finally:
            await driver.close()

    run(scenario())


@pytest.mark.parametrize("repetition", range(30))
def test_no_lost_wakeup_before_between_and_after_defer(
    queue: EventQueue, queue_url: str, repetition: int
) -> None:
    """R10: the event lands before the sensor's check, between check and defer, or after defer."""
    rng = random.Random(repetition)

    async def scenario() -> None:
        driver = SharedStreamDriver()
        try:
            # A sensor already waiting keeps the shared poll alive, so later ones are late subscribers.
            keeper_since = datetime.now(timezone.utc).isoformat()
            keeper = driver.start(
                IterableWebhookTrigger(queue_url=queue_url, since=keeper_since, match={"email": "never@x"})
            )
            expected: dict[int, int] = {}
            for i in range(6):
                since = datetime.now(timezone.utc).isoformat()
                email = f"r{repetition}-{i}@example.com"
                trigger = IterableWebhookTrigger(queue_url=queue_url, since=since, match={"email": email})
                moment = rng.choice(["before", "between", "after"])
                if moment == "before":
                    expected_id, _ = await asyncio.to_thread(queue.append, new_event(email=email))
                    tid = driver.start(trigger)
                elif moment == "between":
                    tid = driver.start(trigger)
                    await asyncio.sleep(0)  # subscribed, window scan not done yet
                    expected_id, _ = await asyncio.to_thread(queue.append, new_event(email=email))
                else:
                    tid = driver.start(trigger)
                    await asyncio.sleep(rng.uniform(0.0, 0.3))
                    expected_id, _ = await asyncio.to_thread(queue.append, new_event(email=email))
                expected[tid] = expected_id
            assert await wait_until(lambda: all(driver.events[t] for t in expected), 10)
            for tid, event_id in expected.items():
                assert [e.payload["event"]["id"] for e in driver.events[tid]] == [event_id]
            assert not driver.events[keeper]
        finally:
            await driver.close()

    run(scenario())


@pytest.mark.parametrize("repetition", range(10))
def test_first_subscribers_do_not_miss_an_event_committed_while_the_poll_opens(
    queue: EventQueue, queue_url: str, repetition: int
) -> None:
    """A new shared poll starts at the queue's head; sensors scan up to it themselves."""

    async def scenario() -> None:
        driver = SharedStreamDriver()
        try:
            since = datetime.now(timezone.utc).isoformat()
            trigger = IterableWebhookTrigger(queue_url=queue_url, since=since, event_name="emailOpen")
            writer = asyncio.create_task(asyncio.to_thread(queue.append, new_event(event_name="emailOpen")))
            await asyncio.sleep(random.Random(repetition).uniform(0, 0.02))
            tid = driver.start(trigger)
            expected_id, _ = await writer
            assert await wait_until(lambda: bool(driver.events[tid]), 5)
            assert driver.events[tid][0].payload["event"]["id"] == expected_id
        finally:
            await driver.close()

    run(scenario())


def test_an_error_in_the_shared_poll_ends_no_sensor(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The shared poll (and each sensor's scan) fails until the queue file can be opened."""
    path = tmp_path / "events.db"
    path.mkdir()
    url = f"sqlite:///{path}"

    async def scenario() -> None:
        driver = SharedStreamDriver()
        try:
            since = datetime.now(timezone.utc).isoformat()
            ids = [
                driver.start(IterableWebhookTrigger(queue_url=url, since=since, event_name="emailOpen"))
                for _ in range(3)
            ]
            await asyncio.sleep(1.5)  # several polls fail meanwhile
            assert not any(driver.tasks[t].done() for t in ids)
            assert len(driver.manager._groups) == 1
            path.rmdir()
            stored, _ = await asyncio.to_thread(
                lambda: EventQueue(url).append(new_event(event_name="emailOpen"))
            )
            assert await wait_until(lambda: all(driver.events[t] for t in ids), 20)
            assert all(driver.events[t][0].payload["event"]["id"] == stored for t in ids)
        finally:
            await driver.close()

    run(scenario(), timeout=60)
    assert "Reading the event queue failed (shared poll" in caplog.text


@pytest.mark.slow
def test_a_postgresql_outage_during_the_wait_ends_no_sensor(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL refuses every connection for a while (the server restarting); sensors wait on."""
    import psycopg

    database = postgres_url.rsplit("/", 1)[1]
    admin = postgres_url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    queue = EventQueue(postgres_url)
    queue.head_id()

    def outage(on: bool) -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"false" if on else "true"}')
            if on:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,)
                )

    async def scenario() -> None:
        driver = SharedStreamDriver()
        try:
            since = datetime.now(timezone.utc).isoformat()
            ids = [
                driver.start(
                    IterableWebhookTrigger(queue_url=postgres_url, since=since, event_name="emailOpen")
                )
                for _ in range(3)
            ]
            await asyncio.sleep(1.0)
            await asyncio.to_thread(outage, True)
            await asyncio.sleep(3.0)
            assert not any(driver.tasks[t].done() for t in ids)
            await asyncio.to_thread(outage, False)
            stored, _ = await asyncio.to_thread(queue.append, new_event(event_name="emailOpen"))
            assert await wait_until(lambda: all(driver.events[t] for t in ids), 30)
            assert all(driver.events[t][0].payload["event"]["id"] == stored for t in ids)
        finally:
            await driver.close()

    try:
        run(scenario(), timeout=90)
    finally:
        outage(False)
        queue.close()
    assert "Reading the event queue failed (shared poll" in caplog.text


def test_shared_watcher_advances_its_cursor_only_after_airflow_persisted(
    queue: EventQueue, queue_url: str
) -> None:
    queue.append(new_event(event_name="emailOpen"))  # history

    async def scenario() -> None:
        driver = SharedStreamDriver()
        store = InMemoryAssetStore()
        trigger = IterableWebhookTrigger(queue_url=queue_url, event_name="emailOpen")
        trigger.asset_state_store = store  # what the triggerer injects for an AssetWatcher
        key = f"{CURSOR_KEY_PREFIX}:{trigger.consumer_name}"
        try:
            tid = driver.start(trigger)
            assert await wait_until(lambda: store.values.get(key) == 1, 5)  # starts at the head
            assert trigger.effective_mode == "watcher"
            for name in ("emailOpen", "emailClick", "emailOpen"):
                await asyncio.to_thread(queue.append, new_event(event_name=name))
            assert await wait_until(lambda: len(driver.events[tid]) == 2, 5)
            assert [e.payload["event"]["id"] for e in driver.events[tid]] == [2, 4]
            await asyncio.sleep(0.5)
            # Yielded but not yet confirmed persisted: the durable cursor stays before event 2.
            assert store.values[key] == 1
            assert queue.get_cursor(trigger.consumer_name) == 1
            driver.confirm()
            assert await wait_until(lambda: store.values.get(key) == 4, 5)
            # Mirrored to the queue right after the asset state store.
            assert await wait_until(lambda: queue.get_cursor(trigger.consumer_name) == 4, 5)
            await asyncio.sleep(0.5)
            assert len(driver.events[tid]) == 2  # idle: no re-firing
            # Event 5 is handed to Airflow but never confirmed stored (a crash before the persist).
            await asyncio.to_thread(queue.append, new_event(event_name="emailOpen"))
            assert await wait_until(lambda: len(driver.events[tid]) == 3, 5)
            await asyncio.sleep(0.5)
            assert store.values[key] == 4
        finally:
            await driver.close()

        # Restart: a new watcher instance with the same store resumes after the cursor (4): the
        # unconfirmed event 5 comes again (at-least-once), nothing older does.
        driver = SharedStreamDriver()
        again = IterableWebhookTrigger(
            **IterableWebhookTrigger(queue_url=queue_url, event_name="emailOpen").serialize()[1]
        )
        again.asset_state_store = store
        try:
            tid = driver.start(again)
            assert await wait_until(lambda: len(driver.events[tid]) == 1, 5)
            assert driver.events[tid][0].payload["event"]["id"] == 5
        finally:
            await driver.close()

    run(scenario())


def test_shared_stream_key_changes_no_argument() -> None:
    """Choosing a stream resolves ``mode="auto"`` without writing it back into the arguments."""
    watcher = IterableWebhookTrigger(event_name="emailOpen")
    watcher.asset_state_store = InMemoryAssetStore()
    sensor = IterableWebhookTrigger(event_name="emailOpen")
    before = watcher.serialize()
    assert watcher.shared_stream_key() != sensor.shared_stream_key()
    assert watcher.serialize() == before == sensor.serialize()
    assert watcher.mode == sensor.mode == "auto"


def test_a_sensor_with_a_watchers_filters_never_moves_the_watchers_cursor(
    queue: EventQueue, queue_url: str
) -> None:
    """An "auto" trigger deferred by a task has the same arguments as a watcher with its filters.

    Its stream's producer is built from those arguments alone; only a watcher that joined the
    stream (through its first item) gives the stream a cursor to move.
    """
    queue.append(new_event(event_name="emailOpen"))
    consumer = IterableWebhookTrigger(queue_url=queue_url, event_name="emailOpen").consumer_name
    queue.set_cursor(consumer, 1)

    async def scenario() -> None:
        driver = SharedStreamDriver()
        try:
            since = datetime.now(timezone.utc).isoformat()
            tid = driver.start(
                IterableWebhookTrigger(queue_url=queue_url, event_name="emailOpen", since=since)
            )
            await asyncio.sleep(0.5)
            stored, _ = await asyncio.to_thread(queue.append, new_event(event_name="emailOpen"))
            assert await wait_until(lambda: bool(driver.events[tid]), 5)
            assert driver.events[tid][0].payload["event"]["id"] == stored
            driver.confirm()
            await asyncio.sleep(0.5)
        finally:
            await driver.close()

    run(scenario())
    assert queue.get_cursor(consumer) == 1


@pytest.mark.parametrize("role", ["sensor", "watcher"])
def test_a_stream_goes_on_once_its_first_trigger_joins(queue: EventQueue, queue_url: str, role: str) -> None:
    """The producer waits for no acknowledgement: joining through the first item is enough.

    A sensor that fires on the first item may wait a while for Airflow to confirm its event
    stored; the stream must not wait with it.
    """
    queue.append(new_event(event_name="emailOpen"))
    queue.set_cursor("c1", 0)
    producer = QueueStreamProducer(IterableWebhookTrigger(queue_url=queue_url, consumer="c1").serialize()[1])

    async def scenario() -> list[int]:
        stream = producer.open_stream()
        try:
            start, payload = await asyncio.wait_for(anext(stream), 10)
            assert isinstance(start, StreamStart) and payload is start and start.head == 1
            if role == "sensor":
                start.join_as_sensor()
            else:
                start.join_as_watcher("c1", None)
            await asyncio.to_thread(queue.append, new_event(event_name="emailOpen"))
            first, _ = await asyncio.wait_for(anext(stream), 10)
            return [first.id]
        finally:
            await stream.aclose()
            await producer.aclose()

    # A sensor goes on from the head; a watcher resumes at its cursor (0: the history too).
    assert run(scenario()) == ([2] if role == "sensor" else [1])


def test_webhook_filter_matches_raw_stream_events_like_the_sql_filters(queue: EventQueue) -> None:
    stored_id, _ = queue.append(new_event(event_name="emailOpen", conn_id="p2"))
    event = queue.fetch(after_id=stored_id - 1)[0]
    assert WebhookFilter(conn_id="p2", event_name="emailOpen").matches(event)
    assert not WebhookFilter(conn_id="iterable_default").matches(event)
    assert not WebhookFilter(kind="journey").matches(event)
    assert not WebhookFilter(since=datetime.now(timezone.utc) + timedelta(seconds=5)).matches(event)


def test_trigger_event_is_json_safe(queue: EventQueue, queue_url: str) -> None:
    queue.append(new_event(event_name="emailOpen"))
    trigger = IterableWebhookTrigger(queue_url=queue_url, event_name="emailOpen", after_id=0)
    event = run(next_event(trigger))
    assert TriggerEvent({"status": "success", "event": event}).payload["event"]["id"] == 1
    assert isinstance(event["received_at"], str)
