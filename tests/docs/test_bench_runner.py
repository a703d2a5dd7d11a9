"""The benchmark runner keeps its table whatever a benchmark does: succeed, crash, hang or be missing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_all", REPO_ROOT / "bench" / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _bench(run_all: ModuleType, tmp_path: Path, name: str, source: str | None, timeout: float = 60) -> object:
    if source is not None:
        (tmp_path / name).write_text(source, encoding="utf-8")
    return run_all.Benchmark(
        name, "run", ("P9",), short_timeout=timeout, full_timeout=timeout, directory=tmp_path
    )


def test_rows_of_a_working_benchmark_reach_the_table(run_all: ModuleType, tmp_path: Path) -> None:
    source = (
        "def run(short=True):\n"
        "    print('progress output goes elsewhere')\n"
        "    return [{'id': 'P9', 'figure': 'widgets', 'value': 30.0, 'unit': 'ms',\n"
        "             'baseline': 20.0, 'goal': '<= 2x', 'met': short}]\n"
    )
    rows, status, _ = run_all.run_benchmark(_bench(run_all, tmp_path, "ok.py", source), short=True)
    assert status == "ok"
    assert rows[0]["ratio"] == pytest.approx(1.5)  # computed from value / baseline
    assert rows[0]["met"] is True  # the short flag reached the benchmark
    table = run_all.render([(_bench(run_all, tmp_path, "ok.py", None), rows, status, 1.0)], short=True)
    assert "| P9 | widgets | 30.0 ms | 20.0 ms | 1.50 | <= 2x | yes |" in table
    assert "cores" in table and "Airflow" in table


def test_a_crash_a_hang_and_a_missing_script_are_reported_not_raised(
    run_all: ModuleType, tmp_path: Path
) -> None:
    crash = _bench(run_all, tmp_path, "crash.py", "def run(short=True):\n    raise RuntimeError('boom')\n")
    hang = _bench(run_all, tmp_path, "hang.py", "import time\ndef run(short=True):\n    time.sleep(60)\n", 3)
    missing = _bench(run_all, tmp_path, "missing.py", None)
    results = []
    for bench in (crash, hang, missing):
        rows, status, elapsed = run_all.run_benchmark(bench, short=True)
        assert rows == []
        results.append((bench, rows, status, elapsed))
    assert results[0][2].startswith("failed: exit code 1") and "boom" in results[0][2]
    assert results[1][2] == "failed: timed out after 3 s"
    assert results[2][2].startswith("not run: missing.py is missing")
    table = run_all.render(results, short=True)
    assert table.count("| not run |") == 3


def test_ingest_rows_are_translated_and_judged_against_both_p1_goals(run_all: ModuleType) -> None:
    row = {
        "benchmark": "P1",
        "backend": "sqlite",
        "events_per_s": 700.0,
        "p50_ms": 20.0,
        "p99_ms": 80.0,
        "baseline_events_per_s": 1000.0,
        "ratio": 0.7,
        "goal": 0.6,
        "half_peak_rate": 350.0,
        "half_peak_p99_ms": 30.0,
        "stored": 5000,
        "acked": 4998,
        "non_2xx": 0,
        "load_generator": "wrk",
    }
    assert run_all.adapt_row({**row, "benchmark": "baseline"}) is None
    adapted = run_all.adapt_row(row)
    assert (adapted["id"], adapted["value"], adapted["baseline"], adapted["met"]) == (
        "P1",
        700.0,
        1000.0,
        True,
    )
    assert run_all.adapt_row({**row, "half_peak_p99_ms": 75.0})["met"] is False  # latency goal missed
    assert run_all.adapt_row({**row, "ratio": 0.55})["met"] is False  # throughput goal missed
    assert run_all.adapt_row({**row, "benchmark": "P2", "ratio": 0.55, "goal": 0.5})["met"] is True
