"""P3: bulk upsert throughput against the rate limit, 429s, and memory flatness in the input size.

``IterableBulkUpsertUsersOperator`` streams a JSON Lines file of users to the simulator, whose
``users/bulkUpdate`` limit is scaled up (Iterable's real limit is 5 requests/s) and whose hook is
paced at the same rate through the connection's ``rate_limits`` extra. The operator runs in a
child process (``execute()`` with a minimal context) so its memory is measured alone; the
simulator runs in this process.

Figures, per input size:

- users/s over the send phase (first request to last answer) against the limit's users/s
  (requests/s x 1,000 users per batch), and the same end to end (including the operator's
  check pass over the whole file, which runs before the first request);
- 429 answers the simulator gave;
- the operator process's peak RSS growth during ``execute()`` (peak RSS minus RSS before).

The 10x run sends ten times the users (cycling over the 1x population so the simulator's own
memory stays bounded), by default at the same limit (about a minute); memory flatness is the
difference of the two peak growths. On a small shared machine a much higher limit measures the
machine's CPU (operator, hook and simulator compete for it) rather than the pacing.

Run: ``python bench/bulk_upsert.py`` (100,000 and 1,000,000 users) or ``--short`` (10,000 and
100,000). :func:`run_benchmark` returns the measurements as dicts, :func:`run` the rows of
``bench/run_all.py``'s table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BULK = "POST /api/users/bulkUpdate"
BATCH = 1_000


def write_users(path: Path, count: int, population: int) -> None:
    """Write ``count`` users as JSON Lines, streaming (identities cycle over ``population``)."""
    plans = ("free", "pro", "team")
    with path.open("w", encoding="utf-8", buffering=1 << 20) as handle:
        for i in range(count):
            n = i % population
            handle.write(
                json.dumps(
                    {
                        "email": f"user{n:07d}@example.com",
                        "dataFields": {"firstName": f"User{n}", "plan": plans[n % 3], "seq": i},
                    }
                )
            )
            handle.write("\n")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worker(users_file: str) -> None:
    """Child process: run the operator once; print timings and memory as JSON on stdout."""
    from airflow_provider_iterable.operators import IterableBulkUpsertUsersOperator

    marks: dict[str, float] = {}

    class _Timed(IterableBulkUpsertUsersOperator):
        def _send_batch(self, batch: list[dict[str, Any]]) -> Any:
            marks.setdefault("first_send", time.perf_counter())
            answer = super()._send_batch(batch)
            marks["last_answer"] = time.perf_counter()
            return answer

    op = _Timed(task_id="bench", users_file=users_file, log_every_batches=10**9)
    # Load the connection and open the session first, so the measurement covers the bulk load only.
    op.hook.get_lists()
    before = _rss_bytes()
    started = time.perf_counter()
    summary = op.execute({})  # type: ignore[arg-type]
    finished = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "summary": summary,
                "elapsed": finished - started,
                "check_pass": marks["first_send"] - started,
                "send_phase": marks["last_answer"] - marks["first_send"],
                "rss_before": before,
                "peak_growth": max(0, peak - before),
            }
        )
    )


def _measure(users: int, per_second: float, workdir: Path, population: int) -> dict[str, Any]:
    from airflow_provider_iterable.testing import IterableSimulator

    path = workdir / f"users_{users}.jsonl"
    write_users(path, users, population)
    limits = {BULK: per_second}
    with IterableSimulator(rate_limits=limits, max_recorded_requests=0) as sim:
        env = {
            **os.environ,
            "AIRFLOW_CONN_ITERABLE_DEFAULT": sim.connection_json(rate_limits=limits),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            # The worker needs no metadata database; keep whatever Airflow writes out of ~/airflow.
            "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME") or str(workdir / "airflow-home"),
        }
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark worker failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        throttled = sim.rate_limited_count(BULK)
    path.unlink()
    summary = result["summary"]
    batches = summary["batches"]
    limit_users = per_second * BATCH
    # Paced at one request per 1/limit s, n batches span (n - 1) intervals plus the last answer.
    send_rate = (batches - 1) * BATCH / result["send_phase"] if batches > 1 else float("nan")
    end_to_end = users / result["elapsed"]
    return {
        "users": users,
        "limit_requests_per_s": per_second,
        "limit_users_per_s": limit_users,
        "send_users_per_s": round(send_rate),
        "send_fraction_of_limit": round(send_rate / limit_users, 4),
        "end_to_end_users_per_s": round(end_to_end),
        "end_to_end_fraction_of_limit": round(end_to_end / limit_users, 4),
        "check_pass_s": round(result["check_pass"], 2),
        "elapsed_s": round(result["elapsed"], 2),
        "batches": batches,
        "success_count": summary["successCount"],
        "http_429": throttled,
        "peak_rss_growth_mb": round(result["peak_growth"] / 2**20, 1),
    }


def run_benchmark(
    short: bool = False, *, base_rate: float = 20.0, big_rate: float = 20.0
) -> list[dict[str, Any]]:
    """Run the 1x and 10x measurements; return one dict per row.

    :param short: 10,000 and 100,000 users instead of 100,000 and 1,000,000.
    :param base_rate: the scaled ``users/bulkUpdate`` limit of the 1x run, requests per second.
    :param big_rate: the limit of the 10x run, requests per second.
    """
    base = 10_000 if short else 100_000
    with tempfile.TemporaryDirectory(prefix="iterable-bench-") as tmp:
        workdir = Path(tmp)
        rows = [_measure(base, base_rate, workdir, base), _measure(base * 10, big_rate, workdir, base)]
    growth_1x, growth_10x = rows[0]["peak_rss_growth_mb"], rows[1]["peak_rss_growth_mb"]
    for row in rows:
        row["memory_10x_minus_1x_mb"] = round(growth_10x - growth_1x, 1)
    return rows


def run(short: bool = True) -> list[dict[str, Any]]:
    """Run P3 and return its rows in the benchmark runner's format (see ``bench/README.md``)."""
    rows = run_benchmark(short)
    out: list[dict[str, Any]] = []
    for r in rows:
        out.append(
            {
                "id": "P3",
                "figure": f"bulk upsert, {r['users']:,} users: users/s while sending",
                "value": r["send_users_per_s"],
                "unit": "users/s",
                "baseline": r["limit_users_per_s"],
                "ratio": r["send_fraction_of_limit"],
                "goal": ">= 95 % of the limit, zero 429s",
                "met": r["send_fraction_of_limit"] >= 0.95 and r["http_429"] == 0,
                "notes": (
                    f"{r['http_429']} x 429; end to end incl. the {r['check_pass_s']} s check pass: "
                    f"{r['end_to_end_users_per_s']:,} users/s "
                    f"({100 * r['end_to_end_fraction_of_limit']:.1f} %); "
                    f"peak RSS +{r['peak_rss_growth_mb']} MB"
                ),
            }
        )
    growth = rows[0]["memory_10x_minus_1x_mb"]
    out.append(
        {
            "id": "P3",
            "figure": "bulk upsert: extra peak RSS of a 10x larger input",
            "value": growth,
            "unit": "MB",
            "baseline": rows[0]["peak_rss_growth_mb"],
            "goal": "< 20 MB",
            "met": growth < 20,
            "notes": f"{rows[0]['users']:,} vs {rows[1]['users']:,} users; "
            "baseline: the 1x run's peak RSS growth",
        }
    )
    return out


def _print_table(rows: list[dict[str, Any]]) -> None:
    print("P3 bulk upsert (IterableBulkUpsertUsersOperator -> simulator, 1,000 users per batch)")
    header = (
        f"{'users':>10} {'limit u/s':>10} {'send u/s':>10} {'% limit':>8} {'e2e u/s':>10} "
        f"{'e2e %':>7} {'check s':>8} {'429s':>5} {'peak RSS +MB':>13}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['users']:>10,} {r['limit_users_per_s']:>10,.0f} {r['send_users_per_s']:>10,} "
            f"{100 * r['send_fraction_of_limit']:>7.1f}% {r['end_to_end_users_per_s']:>10,} "
            f"{100 * r['end_to_end_fraction_of_limit']:>6.1f}% {r['check_pass_s']:>8.2f} "
            f"{r['http_429']:>5} {r['peak_rss_growth_mb']:>13.1f}"
        )
    growth = rows[0]["memory_10x_minus_1x_mb"]
    print(f"memory: the 10x input adds {growth:+.1f} MB of peak RSS growth (goal < 20 MB)")
    ok = all(r["http_429"] == 0 and r["send_fraction_of_limit"] >= 0.95 for r in rows)
    print("goal (>= 95 % of the limit in the send phase, zero 429s): " + ("met" if ok else "NOT met"))


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="10,000 and 100,000 users")
    parser.add_argument("--rate", type=float, default=20.0, help="bulk requests/s of the 1x run")
    parser.add_argument("--big-rate", type=float, default=20.0, help="bulk requests/s of the 10x run")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    parser.add_argument("--worker", metavar="USERS_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return 0
    rows = run_benchmark(args.short, base_rate=args.rate, big_rate=args.big_rate)
    _print_table(rows)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
