"""The state database and its runs table, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import Column, Integer, Table, func, select

from airflow_provider_iterable.event_queue import EventQueue
from airflow_provider_iterable.exceptions import IterableConfigError, StateUnavailableError
from airflow_provider_iterable.state import STATE_SCHEMA_VERSION, RunLog, RunRecord, StateDatabase
from airflow_provider_iterable.state import database as state_database
from tests.event_queue.conftest import make_event

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _record(n: int, **fields: object) -> RunRecord:
    values: dict[str, object] = {
        "kind": "sync_users",
        "name": "warehouse.users",
        "status": "success",
        "result": {"sent": n, "failed": 0},
        "ended_at": T0 + timedelta(minutes=n),
        "dag_id": "d",
        "task_id": "t",
        "run_id": f"r{n}",
    }
    values.update(fields)
    return RunRecord(**values)  # type: ignore[arg-type]


def test_runs_come_back_newest_first_with_their_results(state_url: str) -> None:
    log = RunLog(state_url)
    ids = [log.append(_record(n)) for n in range(3)]
    log.append(_record(9, kind="export", name="emailOpen", status="failed", error="job 7 failed"))
    recent = log.recent(limit=10)
    assert [r.run_id for r in recent] == ["r9", "r2", "r1", "r0"]
    assert recent[0].status == "failed" and recent[0].error == "job 7 failed"
    assert recent[1].result == {"sent": 2, "failed": 0} and recent[1].id == ids[2]
    assert recent[1].ended_at == T0 + timedelta(minutes=2)
    assert [r.run_id for r in log.recent(kind="export")] == ["r9"]
    assert [r.run_id for r in log.recent(limit=2)] == ["r9", "r2"]


def test_a_record_from_a_task_context() -> None:
    ti = SimpleNamespace(dag_id="sync_dag", task_id="users", run_id="manual__1", map_index=-1, try_number=2)
    record = RunRecord.from_context(
        {"ti": ti},
        kind="sync_list",
        name="sync_dag.users",
        status="success",
        result={"sent": 1},
        dry_run=True,
    )
    assert (record.dag_id, record.task_id, record.run_id, record.map_index, record.try_number) == (
        "sync_dag",
        "users",
        "manual__1",
        -1,
        2,
    )
    assert record.dry_run is True


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "sync_everything"}, "kind must be one of"),
        ({"status": "ok"}, "status must be one of"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"result": [1]}, "result must be a JSON object"),
        ({"ended_at": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_a_bad_record_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(IterableConfigError, match=message):
        _record(1, **fields)


def test_recent_checks_its_arguments(tmp_path: Path) -> None:
    log = RunLog(f"sqlite:///{tmp_path / 'state.db'}")
    with pytest.raises(IterableConfigError, match="limit"):
        log.recent(limit=0)
    with pytest.raises(IterableConfigError, match="kind"):
        log.recent(kind="nope")


def test_the_default_is_the_event_queues_database_and_they_live_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("AIRFLOW__ITERABLE__QUEUE_URL", url)
    monkeypatch.delenv("AIRFLOW__ITERABLE__SYNC_STATE_URL", raising=False)
    database = StateDatabase()
    assert database.url == url
    queue = EventQueue(url)
    queue.append(make_event())
    RunLog(database).append(_record(1))
    with sqlite3.connect(tmp_path / "shared.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"iterable_events", "iterable_runs", "iterable_state_schema"} <= tables
    assert queue.head_id() == 1
    queue.close()
    monkeypatch.setenv("AIRFLOW__ITERABLE__SYNC_STATE_URL", f"sqlite:///{tmp_path / 'own.db'}")
    assert StateDatabase().url.endswith("own.db")


def test_concurrent_first_uses_create_the_schema_once(state_url: str) -> None:
    errors: list[BaseException] = []

    def use() -> None:
        try:
            RunLog(state_url).append(_record(1))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    database = StateDatabase(state_url)
    with database.read("count") as conn:
        assert conn.execute(select(func.count()).select_from(state_database.schema_version)).scalar() == 1
    assert len(RunLog(database).recent(limit=100)) == 6


def test_a_table_declared_later_is_created_and_the_version_recorded(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = StateDatabase(state_url)
    RunLog(database).append(_record(1))
    # A later release declares one more table and raises the version.
    extra = Table("iterable_test_later", state_database.metadata, Column("n", Integer(), primary_key=True))
    try:
        monkeypatch.setattr(state_database, "STATE_SCHEMA_VERSION", STATE_SCHEMA_VERSION + 1)
        later = StateDatabase(state_url)
        with later.write("insert") as conn:
            conn.execute(extra.insert().values(n=1))
        with later.read("versions") as conn:
            versions = conn.execute(select(state_database.schema_version.c.version)).scalars().all()
        assert sorted(versions) == [STATE_SCHEMA_VERSION, STATE_SCHEMA_VERSION + 1]
        assert len(RunLog(later).recent()) == 1
    finally:
        state_database.metadata.remove(extra)


def test_a_newer_schema_is_refused(state_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    RunLog(state_url).append(_record(1))
    monkeypatch.setattr(state_database, "STATE_SCHEMA_VERSION", STATE_SCHEMA_VERSION - 1)
    with pytest.raises(StateUnavailableError, match="newer than this release supports"):
        RunLog(state_url).recent()


def test_an_unusable_database_is_state_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StateUnavailableError, match="unavailable"):
        RunLog(f"sqlite:///{tmp_path / 'missing-dir' / 'state.db'}").recent()


def test_bad_urls_are_config_errors() -> None:
    with pytest.raises(IterableConfigError):
        StateDatabase("")
    with pytest.raises(IterableConfigError):
        StateDatabase("sqlite:///x.db", busy_timeout=0)
