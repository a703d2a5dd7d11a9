"""Webhook ingest benchmark (PERFORMANCE.md P1, P2).

Measures events acknowledged per second and acknowledgement latency (p50, p99) of the receiver
storing durably on SQLite (WAL, ``synchronous=FULL``) and on PostgreSQL, beside the same server
stack answering 200 without storing anything (``create_app(store_events=False)``), in one run.
The baseline is measured before and after the durable runs and averaged, so drift of a shared
machine hits both sides. Each durable run is followed by a run at half its peak rate, for the p99
acknowledgement latency at that load.

Load comes from ``wrk`` (Debian package ``wrk``) with a Lua script posting distinct
Iterable-shaped ``emailSend`` bodies; without ``wrk``, a Python asyncio generator on raw
keep-alive connections is used instead (it costs the server more CPU, so ratios are lower).

    python bench/ingest.py            # full run (~5 minutes)
    python bench/ingest.py --short    # ~1-2 minutes
    python bench/ingest.py --json     # rows as JSON

PostgreSQL comes from ``--postgres-url`` or ``ITERABLE_TEST_POSTGRES_URL`` (an admin URL: a
scratch database is created and dropped); without one the PostgreSQL rows are skipped.
``run_ingest()`` returns the rows as dicts for the benchmark runner.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SECRET = "bench-secret-4b1d9e"
CONN_ID = "iterable_bench"
PATH = f"/webhooks/{CONN_ID}/system"
_LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")

LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer __SECRET__"
local counter = 0
local thread_id = 0
local delay_ms = __DELAY__
function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end
function init(args)
  -- A prefix unique to this run and thread keeps bodies distinct across runs on one queue.
  prefix = string.format("__RUN__-%d", tid)
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"email":"user%s-%d@example.com","eventName":"emailSend","dataFields":{"campaignId":1001,'
    .. '"templateId":2002,"messageId":"%s-%d","createdAt":"2026-11-27 03:05:00 +00:00",'
    .. '"workflowId":null,"channelId":3,"messageTypeId":4,"locale":"en-US"}}',
    prefix, counter, prefix, counter)
  return wrk.format(nil, nil, nil, body)
end
if delay_ms > 0 then
  delay = function() return delay_ms end
end
"""


# -- the server under test ------------------------------------------------------------------------


def _serve_child(queue_url: str, discard: bool) -> None:
    """Run the receiver in this process (the ``_serve`` subcommand)."""
    from airflow_provider_iterable.webhooks import create_app
    from airflow_provider_iterable.webhooks.cli import run_server

    # The same settings as `iterable-webhooks serve` (freeze_gc), with or without storing.
    app = create_app(queue_url=queue_url, store_events=not discard, purge_interval_seconds=0, freeze_gc=True)
    run_server(app, host="127.0.0.1", port=0, log_level="warning")


@contextmanager
def _server(queue_url: str, *, discard: bool) -> Iterator[str]:
    env = {
        **os.environ,
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(
            {"conn_type": "iterable", "extra": {"webhook_secrets": [SECRET]}}
        ),
    }
    args = [sys.executable, __file__, "_serve", "--queue-url", queue_url]
    if discard:
        args.append("--discard")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found = threading.Event()
    address: list[str] = []
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            match = _LISTENING.search(line)
            if match and not found.is_set():
                address.append(f"http://{match.group(1)}:{match.group(2)}")
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not found.wait(60):
            raise RuntimeError("receiver did not start:\n" + "".join(lines))
        url = address[0]
        _warm_up(url)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _warm_up(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            response = httpx.post(
                url + PATH,
                json={"email": "warm@example.com", "eventName": "warmUp", "n": uuid.uuid4().hex},
                headers={"Authorization": f"Bearer {SECRET}"},
                timeout=30,
            )
            if response.status_code == 200:
                return
            raise RuntimeError(f"warm-up answered {response.status_code}: {response.text}")
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- load generators ----------------------------------------------------------------------------


def _parse_duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"cannot parse wrk duration {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _run_wrk(url: str, *, connections: int, duration: float, delay_ms: float = 0.0) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            LUA.replace("__SECRET__", SECRET)
            .replace("__DELAY__", f"{delay_ms:.3f}")
            .replace("__RUN__", uuid.uuid4().hex[:12])
        )
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                script.name,
                url + PATH,
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if not total:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    elapsed = float(total.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[total.group(3)]
    requests = int(total.group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = int(bad.group(1)) if bad else 0
    percentiles = {
        m.group(1): _parse_duration_ms(m.group(2)) for m in re.finditer(r"\s(50|99)%\s+(\S+)", out)
    }
    return {
        "acked": requests - non_2xx,
        "non_2xx": non_2xx,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "rate": (requests - non_2xx) / elapsed,
        "p50_ms": percentiles.get("50"),
        "p99_ms": percentiles.get("99"),
    }


async def _python_load(url: str, *, connections: int, duration: float, delay_ms: float) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    counts = {"ok": 0, "bad": 0}
    stop_at = time.monotonic() + duration
    prefix = uuid.uuid4().hex[:8]

    async def worker(index: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        n = 0
        try:
            while time.monotonic() < stop_at:
                n += 1
                body = json.dumps(
                    {
                        "email": f"user{prefix}-{index}-{n}@example.com",
                        "eventName": "emailSend",
                        "dataFields": {"campaignId": 1001, "messageId": f"{prefix}-{index}-{n}"},
                    }
                ).encode()
                head = (
                    f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    f"Authorization: Bearer {SECRET}\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                started = time.perf_counter()
                writer.write(head + body)
                status_line = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append((time.perf_counter() - started) * 1000)
                counts["ok" if status_line.split()[1] == b"200" else "bad"] += 1
                if delay_ms:
                    await asyncio.sleep(delay_ms / 1000)
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "acked": counts["ok"],
        "non_2xx": counts["bad"],
        "socket_errors": 0,
        "rate": counts["ok"] / elapsed,
        "p50_ms": latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


def _load(
    url: str, *, tool: str, connections: int, duration: float, rate: float | None = None
) -> dict[str, Any]:
    # For a target rate, each connection pauses between requests (wrk's delay()); the achieved
    # rate is measured and reported, not assumed.
    delay_ms = connections * 1000.0 / rate if rate else 0.0
    if tool == "wrk":
        return _run_wrk(url, connections=connections, duration=duration, delay_ms=delay_ms)
    return asyncio.run(_python_load(url, connections=connections, duration=duration, delay_ms=delay_ms))


# -- queues ---------------------------------------------------------------------------------------


@contextmanager
def _postgres_database(admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"iterable_bench_{uuid.uuid4().hex[:10]}"
    libpq = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rpartition("/")[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _stored_count(queue_url: str) -> int:
    from airflow_provider_iterable.event_queue import EventQueue, admin

    queue = EventQueue(queue_url)
    try:
        return int(admin.stats(queue)["total"])
    finally:
        queue.close()


# -- the benchmark ------------------------------------------------------------------------------


def run_ingest(
    *,
    short: bool = False,
    postgres_url: str | None = None,
    connections: int = 64,
    duration: float | None = None,
    tool: str | None = None,
) -> list[dict[str, Any]]:
    """Run P1 and P2 and return one row per measured configuration.

    :param short: Shorter runs (about 1-2 minutes in all).
    :param postgres_url: Admin URL of a PostgreSQL server (a scratch database is created);
        default ``ITERABLE_TEST_POSTGRES_URL``; ``None`` there too skips PostgreSQL.
    :param connections: Concurrent keep-alive connections of the load generator.
    :param duration: Seconds per run (default 5 short, 15 full).
    :param tool: ``"wrk"`` or ``"python"``; default ``wrk`` when installed.
    :return: Dicts with ``benchmark``, ``backend``, ``events_per_s``, ``p50_ms``, ``p99_ms``,
        ``baseline_events_per_s``, ``ratio``, ``goal``, ``half_peak_rate``, ``half_peak_p99_ms``,
        ``stored``, ``acked``, ``non_2xx``, ``load_generator``.
    """
    tool = tool or ("wrk" if shutil.which("wrk") else "python")
    if tool not in ("wrk", "python"):
        raise ValueError(f"tool must be 'wrk' or 'python', got {tool!r}")
    duration = duration or (5.0 if short else 15.0)
    postgres_url = postgres_url or os.environ.get("ITERABLE_TEST_POSTGRES_URL")
    workdir = Path(tempfile.mkdtemp(prefix="iterable-bench-"))
    os.environ.setdefault("AIRFLOW_HOME", str(workdir))

    def measure(queue_url: str, discard: bool) -> tuple[dict[str, Any], dict[str, Any] | None, int | None]:
        with _server(queue_url, discard=discard) as url:
            peak = _load(url, tool=tool, connections=connections, duration=duration)
            half = None
            if not discard:
                half = _load(
                    url, tool=tool, connections=connections, duration=duration, rate=peak["rate"] / 2
                )
        stored = None if discard else _stored_count(queue_url)
        return peak, half, stored

    try:
        baseline_url = f"sqlite:///{workdir / 'unused.db'}"
        first, _, _ = measure(baseline_url, True)
        durable: list[tuple[str, str, dict[str, Any], dict[str, Any] | None, int | None]] = []
        sqlite_url = f"sqlite:///{workdir / 'queue.db'}"
        peak, half, stored = measure(sqlite_url, False)
        durable.append(("P1", "sqlite", peak, half, stored))
        if postgres_url:
            with _postgres_database(postgres_url) as pg_url:
                peak, half, stored = measure(pg_url, False)
                durable.append(("P2", "postgresql", peak, half, stored))
        second, _, _ = measure(baseline_url, True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    baseline_rate = statistics.mean([first["rate"], second["rate"]])
    rows: list[dict[str, Any]] = [
        {
            "benchmark": "baseline",
            "backend": "none (200 without storing)",
            "events_per_s": round(baseline_rate, 1),
            "p50_ms": first["p50_ms"],
            "p99_ms": first["p99_ms"],
            "baseline_events_per_s": round(baseline_rate, 1),
            "ratio": 1.0,
            "goal": None,
            "half_peak_rate": None,
            "half_peak_p99_ms": None,
            "stored": None,
            "acked": first["acked"] + second["acked"],
            "non_2xx": first["non_2xx"] + second["non_2xx"],
            "baseline_runs_events_per_s": [round(first["rate"], 1), round(second["rate"], 1)],
            "load_generator": tool,
        }
    ]
    for name, backend, peak, half, stored in durable:
        rows.append(
            {
                "benchmark": name,
                "backend": backend,
                "events_per_s": round(peak["rate"], 1),
                "p50_ms": peak["p50_ms"],
                "p99_ms": peak["p99_ms"],
                "baseline_events_per_s": round(baseline_rate, 1),
                "ratio": round(peak["rate"] / baseline_rate, 3),
                "goal": 0.6 if backend == "sqlite" else 0.5,
                "half_peak_rate": round(half["rate"], 1) if half else None,
                "half_peak_p99_ms": half["p99_ms"] if half else None,
                "stored": stored,
                # Every acknowledged event must be stored (plus one warm-up event per server).
                "acked": peak["acked"] + (half["acked"] if half else 0),
                "non_2xx": peak["non_2xx"] + (half["non_2xx"] if half else 0),
                "load_generator": tool,
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Return the rows as a Markdown table.

    :param rows: What :func:`run_ingest` returned.
    """

    def num(value: Any, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "| bench | backend | events/s | p50 ms | p99 ms | ratio to baseline | goal | half-peak events/s "
        "| half-peak p99 ms | acked | stored | non-2xx |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row['ratio'] * 100:.0f} %"
        goal = "-" if row["goal"] is None else f">= {row['goal'] * 100:.0f} %"
        stored = row["stored"]
        lines.append(
            f"| {row['benchmark']} | {row['backend']} | {num(row['events_per_s'], 0)} | {num(row['p50_ms'])} "
            f"| {num(row['p99_ms'])} | {ratio} | {goal} | {num(row['half_peak_rate'], 0)} "
            f"| {num(row['half_peak_p99_ms'])} | {row['acked']} | {'-' if stored is None else stored} "
            f"| {row['non_2xx']} |"
        )
    lines.append(f"\nload generator: {rows[0]['load_generator']}; baseline = mean of a run before and after")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("_serve", help=argparse.SUPPRESS)
    child.add_argument("--queue-url", required=True)
    child.add_argument("--discard", action="store_true")
    parser.add_argument("--short", action="store_true", help="short runs (~1-2 minutes in all)")
    parser.add_argument("--postgres-url", default=None, help="admin URL (default ITERABLE_TEST_POSTGRES_URL)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (default 64)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per run")
    parser.add_argument("--tool", choices=["wrk", "python"], default=None, help="load generator")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    if args.command == "_serve":
        _serve_child(args.queue_url, args.discard)
        return 0
    rows = run_ingest(
        short=args.short,
        postgres_url=args.postgres_url,
        connections=args.connections,
        duration=args.duration,
        tool=args.tool,
    )
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
