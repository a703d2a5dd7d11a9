"""R8: concurrent writers don't fail: 4 receiver processes and 2 readers on one SQLite file."""

from __future__ import annotations

import asyncio
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from airflow_provider_iterable.event_queue import AsyncEventReader
from tests.webhooks.conftest import CONN_ID, ReceiverProcess, auth_headers, count_rows, system_body

TOTAL = 5_000
RECEIVERS = 4
PATH = f"/webhooks/{CONN_ID}/system"


def read_all(url: str, stop: threading.Event, seen: list[int]) -> None:
    """Poll the queue like a trigger does until ``stop`` is set and nothing new arrives."""

    async def run() -> None:
        reader = AsyncEventReader(url)
        after = 0
        try:
            while True:
                batch = await reader.fetch(after_id=after, limit=1000)
                seen.extend(event.id for event in batch)
                if batch:
                    after = batch[-1].id
                elif stop.is_set():
                    return
                else:
                    await asyncio.sleep(0.05)
        finally:
            await reader.close()

    asyncio.run(run())


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_four_receivers_two_readers_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    receivers = [ReceiverProcess(url) for _ in range(RECEIVERS)]
    with ThreadPoolExecutor(RECEIVERS) as pool:
        list(pool.map(lambda r: r.start(), receivers))
    stop = threading.Event()
    seen: list[list[int]] = [[], []]
    readers = [threading.Thread(target=read_all, args=(url, stop, ids)) for ids in seen]
    for reader in readers:
        reader.start()
    # Every tenth body is also sent to another receiver at the same time: a retry racing itself.
    jobs = [(n, receivers[n % RECEIVERS].url) for n in range(TOTAL)]
    jobs += [(n, receivers[(n + 1) % RECEIVERS].url) for n in range(0, TOTAL, 10)]
    local = threading.local()

    def send(job: tuple[int, str]) -> tuple[int, int, int]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=60, headers=auth_headers())
        n, base = job
        answer = local.client.post(base + PATH, json=system_body(n))
        return n, answer.status_code, answer.json().get("id", 0)

    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(send, jobs))
    finally:
        stop.set()
        for reader in readers:
            reader.join(60)
        for receiver in receivers:
            receiver.stop()

    complaints = [line for r in receivers for line in r.output if "503" in line or "Error" in line]
    assert {status for _, status, _ in results} == {200}, complaints[:5]
    ids_by_body: dict[int, set[int]] = {}
    for n, _, event_id in results:
        ids_by_body.setdefault(n, set()).add(event_id)
    # A body sent twice got the same id both times: no doubles.
    assert all(len(ids) == 1 for ids in ids_by_body.values())
    assert len({next(iter(ids)) for ids in ids_by_body.values()}) == TOTAL
    assert count_rows(url) == TOTAL
    for ids in seen:
        # Each reader saw every event once, in increasing id order.
        assert len(ids) == TOTAL
        assert all(a < b for a, b in itertools.pairwise(ids))
