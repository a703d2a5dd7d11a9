"""``run_dag`` runs a DAG against the simulator in one call, wherever the DAG's file is."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.testing import IterableSimulator, run_dag

START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _upsert(conn_id: str = "iterable_default") -> Any:
    from airflow_provider_iterable.operators import IterableUpsertUserOperator

    return IterableUpsertUserOperator(
        task_id="upsert", email="ada@example.com", data_fields={"plan": "pro"}, iterable_conn_id=conn_id
    )


def _welcome_dag(dag_id: str) -> Any:
    """A DAG built here, in a test module: in no DAG bundle, so Airflow has not serialized it."""
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        _upsert()
    return dag


def test_plain_dag_test_fails_for_a_dag_outside_the_dags_folder(airflow_db: Path) -> None:
    # The trap run_dag exists for: Airflow 3.3 cannot run a DAG it has not serialized.
    with pytest.raises(Exception, match="not serialized"):
        _welcome_dag("welcome_plain").test()


def test_run_dag_runs_it_against_the_given_simulator(airflow_db: Path) -> None:
    before = os.environ.get("AIRFLOW_CONN_ITERABLE_DEFAULT")
    with IterableSimulator() as sim:
        run = run_dag(_welcome_dag("welcome_given"), simulator=sim)
        assert run.state == "success"
        (call,) = sim.requests_for("POST /api/users/update")
        assert call.json == {"email": "ada@example.com", "dataFields": {"plan": "pro"}}
        assert sim.get_user(email="ada@example.com")["dataFields"]["plan"] == "pro"
    assert os.environ.get("AIRFLOW_CONN_ITERABLE_DEFAULT") == before


def test_run_dag_starts_a_simulator_when_given_none(
    airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection pointing nowhere, as a stale shell variable would: run_dag replaces it for the run.
    stale = json.dumps({"conn_type": "iterable", "host": "http://127.0.0.1:9", "password": "x"})
    monkeypatch.setenv("AIRFLOW_CONN_ITERABLE_DEFAULT", stale)
    run = run_dag(_welcome_dag("welcome_started"))
    assert run.state == "success"
    assert os.environ["AIRFLOW_CONN_ITERABLE_DEFAULT"] == stale


def test_run_dag_uses_the_named_connection_and_its_extra(airflow_db: Path) -> None:
    from airflow.sdk import DAG, BaseHook, task

    with DAG("welcome_staging", schedule=None, start_date=START, catchup=False) as dag:

        @task
        def check_connection() -> None:
            conn = BaseHook.get_connection("iterable_staging")
            # Fails the task (and so the run) unless conn_extra reached the task's connection.
            assert conn.extra_dejson["timeout"] == 7

        check = check_connection()
        check >> _upsert("iterable_staging")

    with IterableSimulator() as sim:
        run = run_dag(dag, simulator=sim, conn_id="iterable_staging", conn_extra={"timeout": 7})
        assert run.state == "success"
        assert len(sim.requests_for("POST /api/users/update")) == 1
    assert "AIRFLOW_CONN_ITERABLE_STAGING" not in os.environ


def test_run_dag_returns_a_failed_run_without_raising(airflow_db: Path) -> None:
    with IterableSimulator() as sim:
        sim.add_fault("POST /api/users/update", status=400, times=5)
        run = run_dag(_welcome_dag("welcome_failed"), simulator=sim)
    assert run.state == "failed"
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()} == {"upsert": "failed"}


def test_run_dag_passes_test_arguments(airflow_db: Path) -> None:
    from airflow.sdk import DAG, task

    with DAG("welcome_conf", schedule=None, start_date=START, catchup=False) as dag:

        @task
        def echo(**context: Any) -> Any:
            return context["dag_run"].conf["plan"]

        echo()

    with IterableSimulator() as sim:
        run = run_dag(dag, simulator=sim, run_conf={"plan": "team"})
    assert run.state == "success"
    assert run.conf == {"plan": "team"}


def test_a_simulator_not_started_is_refused() -> None:
    with pytest.raises(IterableConfigError, match="start the simulator"):
        run_dag(object(), simulator=IterableSimulator())  # type: ignore[arg-type]


def test_an_unmigrated_database_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    script = textwrap.dedent(
        """
        from airflow_provider_iterable.exceptions import IterableConfigError
        from airflow_provider_iterable.testing import run_dag
        try:
            run_dag(object())
        except IterableConfigError as exc:
            print("CONFIG-ERROR", exc)
        """
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert "CONFIG-ERROR" in result.stdout, result.stderr
    assert "airflow db migrate" in result.stdout
