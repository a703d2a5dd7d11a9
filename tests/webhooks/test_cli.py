"""The ``iterable-webhooks`` console script and the connection lookup behind the receiver."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from airflow_provider_iterable.webhooks.auth import WebhookAuth
from airflow_provider_iterable.webhooks.connections import (
    FAILED_LOOKUP_TTL,
    ConnectionCache,
    ConnectionLookupError,
    lookup_airflow_connection,
)
from tests.webhooks.conftest import CONN_ID, SECRET, ReceiverProcess, connection_json, post, system_body

CLI = [sys.executable, "-m", "airflow_provider_iterable.webhooks.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def test_serve_then_tail_stats_infer_schema_and_purge(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    with ReceiverProcess(url) as receiver:
        for n in range(3):
            assert post(receiver.url, system_body(n)).status_code == 200
        journey = httpx.post(
            f"{receiver.url}/webhooks/{CONN_ID}/journeys/3001",
            json={"email": "j@example.com"},
            headers={"Authorization": SECRET},
            timeout=30,
        )
        assert journey.status_code == 200

    tail = run_cli("tail", "--queue-url", url, "--json", "--limit", "2")
    assert tail.returncode == 0, tail.stderr
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [e["kind"] for e in lines] == ["system", "journey"]
    assert lines[1]["workflow_id"] == 3001

    filtered = run_cli("tail", "--queue-url", url, "--event-name", "emailSend")
    assert filtered.returncode == 0
    assert len(filtered.stdout.splitlines()) == 3 and "emailSend" in filtered.stdout

    stats = run_cli("stats", "--queue-url", url, "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["total"] == 4

    schema = run_cli("infer-schema", "--queue-url", url, "--event-name", "emailSend")
    assert schema.returncode == 0, schema.stderr
    inferred = json.loads(schema.stdout)
    assert "dataFields" in inferred["properties"]

    missing = run_cli("infer-schema", "--queue-url", url, "--event-name", "neverSeen")
    assert missing.returncode == 1 and "no stored events" in missing.stderr

    purge = run_cli("purge", "--queue-url", url, "--retention-days", "0", "--json")
    assert purge.returncode == 0, purge.stderr
    assert json.loads(purge.stdout) == {"purged": 4}
    assert json.loads(run_cli("stats", "--queue-url", url, "--json").stdout)["total"] == 0


def test_machine_readable_output_stays_parseable_with_the_configured_queue(tmp_path: Path) -> None:
    # The queue comes from [iterable] queue_url (which imports Airflow and its logging), as a
    # user runs ``iterable-webhooks infer-schema > schema.json``: stdout holds only the output.
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    with ReceiverProcess(url) as receiver:
        assert post(receiver.url, system_body(1)).status_code == 200
    env = {**os.environ, "AIRFLOW__ITERABLE__QUEUE_URL": url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)

    tail = run("tail", "--json")
    assert tail.returncode == 0, tail.stderr
    assert [json.loads(line)["kind"] for line in tail.stdout.splitlines()] == ["system"]
    stats = run("stats", "--json")
    assert json.loads(stats.stdout)["total"] == 1
    schema = run("infer-schema", "--event-name", "emailSend")
    assert json.loads(schema.stdout)["type"] == "object"
    # The deployment notice belongs to the receiver's and triggerer's start, not to these.
    for result in (tail, stats, schema):
        assert "SQLite file" not in result.stdout + result.stderr


def test_serve_rejects_bad_workers() -> None:
    result = run_cli("serve", "--workers", "0", "--port", "0")
    assert result.returncode != 0 and "--workers" in result.stderr


def test_airflow_lookup_through_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ITERABLE_LOOKUP", connection_json(webhook_secrets=[SECRET]))
    monkeypatch.setenv("AIRFLOW_CONN_HTTP_LOOKUP", json.dumps({"conn_type": "http", "host": "example.com"}))
    found = lookup_airflow_connection("iterable_lookup")
    assert found is not None and found.check(f"Bearer {SECRET}")
    assert lookup_airflow_connection("http_lookup") is None
    assert lookup_airflow_connection("never_defined_anywhere") is None


def test_connection_cache_expiry_and_shared_lookups() -> None:
    now = [0.0]
    calls: list[str] = []
    gate = threading.Event()

    def lookup(conn_id: str) -> WebhookAuth | None:
        calls.append(conn_id)
        gate.wait(5)
        return WebhookAuth(secrets=(b"s",)) if conn_id == "known" else None

    cache = ConnectionCache(lookup, found_ttl=30, unknown_ttl=60, clock=lambda: now[0])

    async def scenario() -> None:
        # Ten concurrent requests for one id share one lookup.
        pending = [asyncio.ensure_future(cache.get("known")) for _ in range(10)]
        await asyncio.sleep(0.1)
        gate.set()
        results = await asyncio.gather(*pending)
        assert all(r is not None for r in results)
        assert calls == ["known"]
        assert await cache.get("made_up") is None
        assert await cache.get("made_up") is None
        assert calls == ["known", "made_up"]
        now[0] = 31.0  # past the found TTL, not the unknown one
        await cache.get("known")
        await cache.get("made_up")
        assert calls == ["known", "made_up", "known"]
        now[0] = 61.0
        await cache.get("made_up")
        assert calls[-1] == "made_up" and len(calls) == 4
        # Ids Airflow could not hold are never looked up.
        assert await cache.get("../etc/passwd") is None
        assert await cache.get("a b") is None
        assert len(calls) == 4

    asyncio.run(scenario())


def test_failing_backend_is_not_an_unknown_connection() -> None:
    now = [0.0]
    calls: list[str] = []

    def broken(conn_id: str) -> WebhookAuth | None:
        calls.append(conn_id)
        raise RuntimeError("secrets backend at postgresql://u:pw@db down")

    cache = ConnectionCache(broken, unknown_ttl=60, clock=lambda: now[0])

    async def scenario() -> None:
        for _ in range(3):
            with pytest.raises(ConnectionLookupError) as failed:
                await cache.get("anything")
            assert "pw@db" not in str(failed.value)
        assert calls == ["anything"]  # remembered for a few seconds: an outage is not hammered
        now[0] = FAILED_LOOKUP_TTL + 1  # well inside the unknown TTL: asked again
        with pytest.raises(ConnectionLookupError):
            await cache.get("anything")
        assert len(calls) == 2

    asyncio.run(scenario())
