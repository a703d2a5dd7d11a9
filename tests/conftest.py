"""Shared fixtures: an isolated ``AIRFLOW_HOME``, the Iterable simulator, a PostgreSQL database.

Airflow reads ``AIRFLOW_HOME`` when it is first imported, so the environment is set here, at
import time of the conftest, before any test module imports Airflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="iterable-test-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_AIRFLOW_HOME / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ["AIRFLOW__ITERABLE__QUEUE_URL"] = f"sqlite:///{_AIRFLOW_HOME / 'iterable_webhooks.db'}"
(_AIRFLOW_HOME / "dags").mkdir(exist_ok=True)

POSTGRES_ENV = "ITERABLE_TEST_POSTGRES_URL"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """Return the isolated ``AIRFLOW_HOME`` of this test session."""
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """Migrate Airflow's metadata database once per session (needed by ``dag.test()``)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    return airflow_home


@pytest.fixture
def simulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Start an Iterable simulator on loopback and point ``iterable_default`` at it."""
    from airflow_provider_iterable.testing import IterableSimulator

    with IterableSimulator() as sim:
        monkeypatch.setenv("AIRFLOW_CONN_ITERABLE_DEFAULT", sim.connection_json())
        yield sim


def _postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """Create a fresh PostgreSQL database for one test; yield its SQLAlchemy URL; drop it after.

    The server comes from ``ITERABLE_TEST_POSTGRES_URL`` (``.ci/run`` sets it). Without it the
    test is skipped locally, but fails in CI, where a skipped PostgreSQL test would hide a defect.
    """
    admin = _postgres_admin_url()
    if not admin:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set in CI: PostgreSQL tests must run there")
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server to test against")
    import psycopg

    name = f"iterable_test_{uuid.uuid4().hex[:12]}"
    libpq = admin.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at {POSTGRES_ENV} is not reachable: {exc}")
    base, _, _ = admin.rpartition("/")
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
