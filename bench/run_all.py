"""Run every benchmark in ``bench/`` and write one results table.

Each benchmark script exposes an importable function that runs it and returns its rows as
dicts (see ``bench/README.md``). This runner starts each script in its own subprocess, so a
crash or a hang in one benchmark cannot take the table down, and prints one Markdown table
(figure, baseline measured in the same run, ratio, goal, met or not) to stdout and to
``bench/RESULTS.md``, with the machine's core count, the Python and Airflow versions and the date.

Usage::

    python bench/run_all.py            # short mode (the default; `make bench`)
    python bench/run_all.py --full     # the full-size runs
    python bench/run_all.py --only client_overhead
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import inspect
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "RESULTS.md"


@dataclass(frozen=True)
class Benchmark:
    """One benchmark script and the figures it is expected to produce."""

    script: str  # file name in bench/
    function: str  # the importable entry point returning rows (the first of these it has)
    figures: tuple[str, ...]  # PERFORMANCE.md ids it covers
    short_timeout: float  # seconds before the runner gives up on it in short mode
    full_timeout: float
    directory: Path = BENCH_DIR


# Short-mode timeouts add up to under ten minutes, so `make bench` on a 2-core machine ends in
# time even when a benchmark hangs.
BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("ingest.py", "run,run_ingest", ("P1", "P2"), short_timeout=220, full_timeout=1800),
    Benchmark("bulk_upsert.py", "run", ("P3",), short_timeout=90, full_timeout=1800),
    Benchmark("wait.py", "run", ("P4", "P5"), short_timeout=220, full_timeout=1800),
    Benchmark("client_overhead.py", "run", ("P6",), short_timeout=60, full_timeout=900),
)

GOALS = {
    "P1": "≥ 60 % of baseline; p99 < 50 ms at half peak",
    "P2": "≥ 50 % of baseline",
    "P3": "≥ 95 % of the limit, zero 429s; +< 20 MB for 10x input",
    "P4": "p50 < 250 ms, p99 < 1 s",
    "P5": "flat in the number of sensors; idle CPU < 5 %",
    "P6": "≤ 1.3 x bare session",
}

MISSING_REASONS = {
    "P2": "no PostgreSQL: set ITERABLE_TEST_POSTGRES_URL to an admin URL",
}

# Row keys the runner understands; scripts may use any of the synonyms.
_KEYS = {
    "id": ("id", "figure_id", "number"),
    "figure": ("figure", "name", "what", "metric", "description"),
    "value": ("value", "result", "measured"),
    "unit": ("unit", "units"),
    "baseline": ("baseline", "baseline_value"),
    "baseline_unit": ("baseline_unit",),
    "ratio": ("ratio",),
    "goal": ("goal", "target"),
    "met": ("met", "ok", "passed", "goal_met"),
    "notes": ("notes", "note", "detail", "details", "comment"),
}


def _pick(row: dict[str, Any], key: str) -> Any:
    for name in _KEYS[key]:
        if name in row and row[name] is not None:
            return row[name]
    return None


def normalise_row(row: dict[str, Any], script: str) -> dict[str, Any]:
    """Map a benchmark's row onto the table's columns, computing the ratio when it is missing.

    :param row: one row as returned by a benchmark function.
    :param script: the script it came from, for the notes of rows without an id.
    """
    out = {key: _pick(row, key) for key in _KEYS}
    if out["ratio"] is None and _is_number(out["value"]) and _is_number(out["baseline"]) and out["baseline"]:
        out["ratio"] = float(out["value"]) / float(out["baseline"])
    if out["goal"] is None and out["id"] in GOALS:
        out["goal"] = GOALS[str(out["id"])]
    out["figure"] = out["figure"] or script
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt_number(value: Any) -> str:
    if value is None:
        return "—"
    if not _is_number(value):
        return str(value)
    number = float(value)
    if number == 0 or abs(number) >= 100:
        return f"{number:,.0f}"
    if abs(number) >= 10:
        return f"{number:.1f}"
    return f"{number:.3g}"


def _fmt_with_unit(value: Any, unit: Any) -> str:
    text = _fmt_number(value)
    return f"{text} {unit}" if unit and value is not None and _is_number(value) else text


def _fmt_met(met: Any) -> str:
    if met is True:
        return "yes"
    if met is False:
        return "**no**"
    return "—" if met is None else str(met)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# -- child side ---------------------------------------------------------------------------------


def run_child(script: Path, function: str, short: bool, out_file: Path) -> int:
    """Import one benchmark, call its entry point and write its rows as JSON to ``out_file``.

    :param script: path of the benchmark script.
    :param function: name of the function returning the rows.
    :param short: run the short mode.
    :param out_file: where the rows go (stdout stays free for the benchmark's own output).
    """
    # Benchmarks import the package from the work tree and helpers from their own directory.
    sys.path[:0] = [str(REPO_ROOT), str(script.parent)]
    spec = importlib.util.spec_from_file_location(f"bench_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = [name for name in function.split(",") if hasattr(module, name)]
    if not names:
        raise SystemExit(f"{script.name} has no function named {function.replace(',', ' or ')}")
    entry = getattr(module, names[0])
    parameters = inspect.signature(entry).parameters
    rows = entry(short=short) if "short" in parameters else entry()
    out_file.write_text(json.dumps([adapt_row(row) for row in rows], default=str), encoding="utf-8")
    return 0


def adapt_row(row: dict[str, Any]) -> dict[str, Any] | None:
    """Return a row in the runner's format, translating ``ingest.run_ingest()``'s own rows.

    :param row: one row as a benchmark returned it.
    :return: the row, or ``None`` for a row that only carries the baseline (it is a column of
        the others).
    """
    if "benchmark" not in row or "events_per_s" not in row:
        return row
    if row["benchmark"] == "baseline":
        return None
    goal = float(row["goal"])
    half_p99 = row.get("half_peak_p99_ms")
    met = row["ratio"] >= goal and not row.get("non_2xx")
    goal_text = f"≥ {goal:.0%} of baseline"
    if row["benchmark"] == "P1":
        goal_text += "; p99 < 50 ms at half peak"
        met = met and half_p99 is not None and half_p99 < 50
    notes = (
        f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms at peak; p99 {half_p99} ms at half peak "
        f"({row.get('half_peak_rate')}/s); {row.get('acked')} acked, {row.get('stored')} stored, "
        f"{row.get('non_2xx')} non-2xx; load from {row.get('load_generator')}"
    )
    return {
        "id": row["benchmark"],
        "figure": f"webhook ingest, durable {row['backend']}, events acknowledged/s",
        "value": row["events_per_s"],
        "unit": "/s",
        "baseline": row["baseline_events_per_s"],
        "ratio": row["ratio"],
        "goal": goal_text,
        "met": met,
        "notes": notes,
    }


# -- parent side --------------------------------------------------------------------------------


def run_benchmark(bench: Benchmark, short: bool) -> tuple[list[dict[str, Any]], str, float]:
    """Run one benchmark in a subprocess.

    :return: its normalised rows, a status ("ok", "not run: ...", "failed: ..."), seconds taken.
    """
    path = bench.directory / bench.script
    if not path.exists():
        return [], f"not run: {bench.script} is missing", 0.0
    timeout = bench.short_timeout if short else bench.full_timeout
    with tempfile.TemporaryDirectory(prefix="iterable-bench-") as tmp:
        out_file = Path(tmp) / "rows.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", str(path), bench.function]
        command += ["--out", str(out_file), "--short" if short else "--full"]
        # Each benchmark gets a throwaway AIRFLOW_HOME: its queue files and Airflow's config never
        # touch a real installation's.
        home = Path(tmp) / "airflow-home"
        home.mkdir()
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        env.pop("AIRFLOW__ITERABLE__QUEUE_URL", None)
        started = time.monotonic()
        # Own process group, so a timeout also ends the servers the benchmark started.
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=sys.stderr,  # the benchmark's own progress output goes to stderr
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            return [], f"failed: timed out after {timeout:.0f} s", time.monotonic() - started
        elapsed = time.monotonic() - started
        if stderr:
            sys.stderr.write(stderr)
        if process.returncode != 0 or not out_file.exists():
            last = [line for line in (stderr or "").strip().splitlines() if line.strip()][-1:]
            reason = last[0][:200] if last else "no output"
            return [], f"failed: exit code {process.returncode}: {reason}", elapsed
        rows = json.loads(out_file.read_text(encoding="utf-8"))
    return [normalise_row(row, bench.script) for row in rows if row is not None], "ok", elapsed


def _kill_group(process: subprocess.Popen[str]) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _versions() -> dict[str, str]:
    try:
        from importlib.metadata import version

        airflow = version("apache-airflow")
    except Exception:  # the table is still worth writing without it
        airflow = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "airflow": airflow,
        "platform": f"{platform.system()} {platform.machine()}",
        "commit": commit or "unknown",
    }


def render(results: list[tuple[Benchmark, list[dict[str, Any]], str, float]], short: bool) -> str:
    """Return the results as Markdown: a header with the machine and one table."""
    info = _versions()
    lines = [
        "# Benchmark results",
        "",
        f"Run {info['date']} on {info['cores']} cores ({info['platform']}), Python {info['python']}, "
        f"Airflow {info['airflow']}, commit {info['commit']}, {'short' if short else 'full'} mode "
        "(`python bench/run_all.py`). Baselines are measured in the same run on the same machine; "
        "absolute figures drift on a shared machine, ratios hold.",
        "",
        "| # | figure | value | baseline (same run) | ratio | goal | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for bench, rows, status, _ in results:
        if status != "ok":
            for figure in bench.figures:
                lines.append(
                    f"| {figure} | {_cell(bench.script)} | {_cell(status)} | — | — | "
                    f"{_cell(GOALS.get(figure, '—'))} | not run |"
                )
            continue
        # A figure the script did not measure (P2 without a PostgreSQL server) is listed as such.
        for figure in bench.figures:
            if not any(row["id"] == figure for row in rows):
                reason = MISSING_REASONS.get(figure, "the script returned no row for it")
                lines.append(
                    f"| {figure} | {_cell(bench.script)} | {_cell(reason)} | — | — | "
                    f"{_cell(GOALS.get(figure, '—'))} | not run |"
                )
        for row in rows:
            baseline_unit = row["baseline_unit"] or row["unit"]
            figure = row["figure"] + (f" ({row['notes']})" if row["notes"] else "")
            ratio = row["ratio"]
            lines.append(
                "| "
                + " | ".join(
                    _cell(text)
                    for text in (
                        str(row["id"] or "/".join(bench.figures)),
                        figure,
                        _fmt_with_unit(row["value"], row["unit"]),
                        _fmt_with_unit(row["baseline"], baseline_unit),
                        f"{ratio:.2f}" if _is_number(ratio) else _fmt_number(ratio),
                        str(row["goal"] or "—"),
                        _fmt_met(row["met"]),
                    )
                )
                + " |"
            )
    lines += ["", "| script | status | seconds |", "|---|---|---|"]
    for bench, _, status, elapsed in results:
        lines.append(f"| {bench.script} | {_cell(status)} | {elapsed:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks (or, with ``--child``, one of them inside its subprocess)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--short", dest="short", action="store_true", default=True, help="short mode (default)")
    mode.add_argument("--full", dest="short", action="store_false", help="full-size runs")
    parser.add_argument("--only", action="append", help="run only these scripts (name without .py)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="where to write the table")
    parser.add_argument("--child", nargs=2, metavar=("SCRIPT", "FUNCTION"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        return run_child(Path(args.child[0]), args.child[1], args.short, args.out)

    selected = [b for b in BENCHMARKS if not args.only or Path(b.script).stem in args.only]
    results = []
    for bench in selected:
        print(f"== {bench.script} ({', '.join(bench.figures)})", file=sys.stderr, flush=True)
        rows, status, elapsed = run_benchmark(bench, args.short)
        print(f"== {bench.script}: {status} in {elapsed:.0f} s", file=sys.stderr, flush=True)
        results.append((bench, rows, status, elapsed))
    table = render(results, args.short)
    print(table)
    args.output.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
