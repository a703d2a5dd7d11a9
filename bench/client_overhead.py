"""P6: the time ``IterableHook`` adds to each call, against a bare ``requests.Session``.

Both clients make the same calls to the same Iterable simulator: ``GET /api/users/getByEmail``
and ``POST /api/users/update``, each checking the status and decoding the JSON answer. The
simulator runs in its own process with rate limiting off, and the hook's connection switches its
client-side pacing off for both endpoints, so the figure is the hook's own cost (connection
handling, JSON encoding, the limiter, retry set-up, logging, error decoding) and not waiting.

Calls run in rounds that alternate which client goes first, so drift on a shared machine (other
processes, CPU frequency) hits both alike; the figure per client is the median over rounds of
the mean time per call. Goal (PERFORMANCE.md P6): the hook takes ≤ 1.3 times the bare session's time.

Usage::

    python bench/client_overhead.py            # short mode
    python bench/client_overhead.py --full
    python bench/client_overhead.py --profile  # also profile the hook's calls (cProfile)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests

GOAL_RATIO = 1.3
CONN_ID = "iterable_bench"
EMAIL = "bench@example.com"
ENDPOINTS = ("GET /api/users/getByEmail", "POST /api/users/update")

# The simulator runs in a child process so its CPU time is not charged to the client under test
# (on two cores, client and server then run side by side, as they would against Iterable).
_SIMULATOR_PROCESS = """
import sys
from airflow_provider_iterable.testing import IterableSimulator

sim = IterableSimulator(enforce_rate_limits=False, max_recorded_requests=0)
sim.start()
sim.add_user(email=sys.argv[1], data_fields={"plan": "pro"})
print(sim.url, sim.api_key, flush=True)
sys.stdin.read()  # serve until the parent closes our stdin
sim.stop()
"""


@contextmanager
def simulator_process() -> Iterator[tuple[str, str]]:
    """Run an Iterable simulator in a subprocess; yield its URL and API key."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SIMULATOR_PROCESS, EMAIL],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if len(line) != 2:
            raise RuntimeError("the simulator process did not start")
        yield line[0], line[1]
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _hook_calls(url: str, api_key: str) -> dict[str, Callable[[], Any]]:
    from airflow_provider_iterable.hooks.iterable import IterableHook

    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {
            "conn_type": "iterable",
            "host": url,
            "password": api_key,
            # 0 switches the hook's pacing off for the endpoint: the figure is overhead, not waiting.
            "extra": {"rate_limits": dict.fromkeys(ENDPOINTS, 0)},
        }
    )
    hook = IterableHook(CONN_ID)
    return {
        ENDPOINTS[0]: lambda: hook.get_user_by_email(EMAIL),
        ENDPOINTS[1]: lambda: hook.upsert_user(email=EMAIL, data_fields={"plan": "pro", "seats": 3}),
    }


def _bare_calls(url: str, api_key: str) -> dict[str, Callable[[], Any]]:
    session = requests.Session()
    session.headers.update({"Api-Key": api_key, "Accept": "application/json"})
    timeout = (10.0, 30.0)

    def get_user() -> Any:
        response = session.get(f"{url}/api/users/getByEmail", params={"email": EMAIL}, timeout=timeout)
        response.raise_for_status()
        return response.json().get("user")

    def upsert() -> Any:
        body = {"email": EMAIL, "dataFields": {"plan": "pro", "seats": 3}}
        response = session.post(f"{url}/api/users/update", json=body, timeout=timeout)
        response.raise_for_status()
        return response.json()

    return {ENDPOINTS[0]: get_user, ENDPOINTS[1]: upsert}


def _time_calls(call: Callable[[], Any], n: int) -> float:
    """Return the mean seconds per call over ``n`` calls."""
    started = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n


def measure(rounds: int, calls_per_round: int, warmup: int = 100) -> dict[str, dict[str, float]]:
    """Measure both clients on both endpoints; return median seconds per call by endpoint and client.

    :param rounds: number of rounds; the client that goes first alternates between rounds.
    :param calls_per_round: calls per client, endpoint and round.
    :param warmup: calls per client and endpoint before timing (connections, imports, caches).
    """
    with simulator_process() as (url, api_key):
        clients = {"hook": _hook_calls(url, api_key), "bare": _bare_calls(url, api_key)}
        for calls in clients.values():
            for call in calls.values():
                _time_calls(call, warmup)
        samples: dict[str, dict[str, list[float]]] = {
            endpoint: {"hook": [], "bare": []} for endpoint in ENDPOINTS
        }
        for round_no in range(rounds):
            order = ("hook", "bare") if round_no % 2 == 0 else ("bare", "hook")
            for endpoint in ENDPOINTS:
                for client in order:
                    samples[endpoint][client].append(_time_calls(clients[client][endpoint], calls_per_round))
    return {
        endpoint: {client: statistics.median(values) for client, values in by_client.items()}
        for endpoint, by_client in samples.items()
    }


def profile_hook(calls: int = 2000, top: int = 25) -> str:
    """Profile the hook's calls with cProfile; return the top functions by own and cumulative time.

    :param calls: calls per endpoint.
    :param top: how many functions to list per ordering.
    """
    with simulator_process() as (url, api_key):
        hook_calls = _hook_calls(url, api_key)
        for call in hook_calls.values():
            _time_calls(call, 50)
        profiler = cProfile.Profile()
        profiler.enable()
        for call in hook_calls.values():
            for _ in range(calls):
                call()
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def run(short: bool = True) -> list[dict[str, Any]]:
    """Run P6 and return its rows (one per endpoint and one for both together).

    :param short: a few thousand calls (seconds); otherwise ten times as many.
    """
    rounds, per_round = (10, 150) if short else (20, 750)
    medians = measure(rounds, per_round)
    rows = []
    for endpoint, by_client in medians.items():
        rows.append(
            _row(f"per-call time, {endpoint}", by_client["hook"], by_client["bare"], rounds * per_round)
        )
    hook_total = sum(by_client["hook"] for by_client in medians.values())
    bare_total = sum(by_client["bare"] for by_client in medians.values())
    rows.append(_row("per-call time, both endpoints", hook_total / 2, bare_total / 2, 2 * rounds * per_round))
    return rows


def _row(figure: str, hook_seconds: float, bare_seconds: float, calls: int) -> dict[str, Any]:
    ratio = hook_seconds / bare_seconds
    return {
        "id": "P6",
        "figure": f"IterableHook {figure}",
        "value": round(hook_seconds * 1e6, 1),
        "unit": "µs",
        "baseline": round(bare_seconds * 1e6, 1),
        "ratio": ratio,
        "goal": f"≤ {GOAL_RATIO} x bare requests.Session",
        "met": ratio <= GOAL_RATIO,
        "notes": f"{calls} calls per client, median of rounds",
    }


def main(argv: list[str] | None = None) -> int:
    """Print P6's figures (and, with ``--profile``, where the hook spends its time)."""
    parser = argparse.ArgumentParser(
        description="P6: IterableHook overhead per call vs a bare requests.Session"
    )
    parser.add_argument("--full", action="store_true", help="ten times as many calls")
    parser.add_argument("--profile", action="store_true", help="profile the hook's calls with cProfile")
    args = parser.parse_args(argv)
    for row in run(short=not args.full):
        print(
            f"{row['figure']}: hook {row['value']:.0f} µs, bare session {row['baseline']:.0f} µs, "
            f"ratio {row['ratio']:.2f} (goal ≤ {GOAL_RATIO}) {'met' if row['met'] else 'NOT met'}"
        )
    if args.profile:
        print(profile_hook())
    return 0


if __name__ == "__main__":
    sys.exit(main())
