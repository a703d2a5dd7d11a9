"""R1: an acknowledged event is never lost, even when the receiver is SIGKILLed mid-burst."""

from __future__ import annotations

import random
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from airflow_provider_iterable.event_queue import EventQueue
from airflow_provider_iterable.event_queue.schema import events
from tests.webhooks.conftest import CONN_ID, ReceiverProcess, auth_headers, system_body

TOTAL = 5_000
SENDERS = 16
KILLS = 4
PATH = f"/webhooks/{CONN_ID}/system"


class Target:
    """The receiver's current address; senders wait while it is down."""

    def __init__(self, receiver: ReceiverProcess) -> None:
        self.receiver = receiver
        self.up = threading.Event()
        self.up.set()
        self.url = receiver.url


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_mid_burst_loses_no_acknowledged_event(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    url = f"sqlite:///{path}"
    receiver = ReceiverProcess(url).start()
    target = Target(receiver)
    acked: dict[int, int] = {}  # body number -> event id answered with a 2xx
    failed: set[int] = set()
    lock = threading.Lock()
    next_index = iter(range(TOTAL))
    done = threading.Event()
    kills: list[int] = []  # how many acknowledgements had been given at each kill

    def sender() -> None:
        with httpx.Client(timeout=30, headers=auth_headers()) as client:
            while True:
                with lock:
                    n = next(next_index, None)
                if n is None:
                    return
                target.up.wait(60)
                try:
                    answer = client.post(target.url + PATH, json=system_body(n))
                except httpx.TransportError:
                    answer = None
                with lock:
                    if answer is not None and answer.status_code == 200:
                        acked[n] = answer.json()["id"]
                    else:
                        failed.add(n)

    def killer() -> None:
        rng = random.Random()
        for _ in range(KILLS):
            # A random moment while the burst is running: after a random number of further
            # acknowledgements, plus a random fraction of a second.
            with lock:
                goal = len(acked) + rng.randint(100, 600)
            while len(acked) < goal:
                if done.wait(0.01):
                    return
            if done.wait(rng.uniform(0, 0.2)):
                return
            with lock:
                kills.append(len(acked))
            target.up.clear()
            target.receiver.kill()
            target.receiver.start()
            target.url = target.receiver.url
            target.up.set()

    killing = threading.Thread(target=killer)
    killing.start()
    with ThreadPoolExecutor(SENDERS) as pool:
        for future in [pool.submit(sender) for _ in range(SENDERS)]:
            future.result()
    done.set()
    killing.join(120)
    try:
        assert len(kills) >= 2, "the burst ended before the receiver could be killed twice"
        assert 0 < kills[0] < TOTAL
        assert len(acked) + len(failed) == TOTAL

        queue = EventQueue(url)
        try:
            stored = {e.payload["dataFields"]["messageId"]: e.id for e in queue.fetch(limit=10_000)}
            settings = queue.settings()
        finally:
            queue.close()
        # Every acknowledged body is there, under the id its answer named.
        for n, event_id in acked.items():
            assert stored.get(f"{n:032x}") == event_id, n

        # The sender resends what got no 2xx, then replays everything: all answered 200.
        with httpx.Client(timeout=30, headers=auth_headers()) as client:
            for n in sorted(failed):
                assert client.post(target.url + PATH, json=system_body(n)).status_code == 200
            statuses = {
                client.post(target.url + PATH, json=system_body(n)).json()["status"] for n in range(TOTAL)
            }
        assert statuses == {"duplicate"}
    finally:
        target.receiver.stop()

    with sqlite3.connect(path) as db:
        assert db.execute(f"SELECT count(*) FROM {events.name}").fetchone()[0] == TOTAL
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # synchronous is per connection: read back from the queue's own connection.
    assert settings["journal_mode"] == "wal"
    assert settings["synchronous"] == 2  # FULL
