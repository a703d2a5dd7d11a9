"""Run a DAG once against the Iterable simulator, in one call: :func:`run_dag`.

Airflow 3.3's ``dag.test()`` creates its DAG run from the DAG's serialized form in the metadata
database, which only the DAG bundles it parses provide: a DAG built in a test module, or kept
outside ``[core] dags_folder``, fails with "the dag is not serialized". :func:`run_dag` writes
the DAG there first, as Airflow's DAG processor would, and points the connection at a simulator.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.testing.simulator import IterableSimulator

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun
    from airflow.sdk import DAG

__all__ = ["run_dag"]

#: The bundle Airflow reads ``[core] dags_folder`` through, unless configured otherwise.
_DAGS_FOLDER_BUNDLE = "dags-folder"


def run_dag(
    dag: DAG,
    *,
    simulator: IterableSimulator | None = None,
    conn_id: str = "iterable_default",
    conn_extra: Mapping[str, Any] | None = None,
    **test_kwargs: Any,
) -> DagRun:
    """Run ``dag`` once with ``dag.test()`` against an Iterable simulator; return the finished DAG run.

    The connection ``conn_id`` points at the simulator while the DAG runs (through
    ``AIRFLOW_CONN_<CONN_ID>``; the variable's earlier value, if any, is put back afterwards), and
    the DAG is serialized into Airflow's metadata database first, so it runs wherever its file
    lives. Airflow's metadata database must be migrated (``airflow db migrate`` with a test
    ``AIRFLOW_HOME``). Tasks that fail do not raise: check ``run.state`` (``"success"`` or
    ``"failed"``) and the task instances (``run.get_task_instances()``).

    ``dag.test()`` runs a deferred sensor's trigger inline and does not enforce its ``timeout``:
    a webhook that never comes hangs the call, so give such tests a timeout of their own
    (``pytest-timeout``).

    :param dag: the DAG to run, e.g. imported from your DAGs folder or built in the test.
    :param simulator: a running simulator to run against, to inspect what it received afterwards;
        by default one is started for this run and stopped after it.
    :param conn_id: the Iterable connection the DAG's tasks use.
    :param conn_extra: extra fields of that connection (``timeout``, ``rate_limits``, ...); the
        webhook secret the simulator sends (:meth:`IterableSimulator.webhook_connection_extra`)
        is there too, so a receiver checking deliveries against ``conn_id`` accepts them.
    :param test_kwargs: passed to ``dag.test()`` (``run_conf``, ``logical_date``, ...).
    :return: the DAG run, finished.
    :raises IterableConfigError: when ``simulator`` is not running, or the metadata database is
        not migrated.
    """
    if not isinstance(conn_id, str) or not conn_id:
        raise IterableConfigError(f"conn_id must be a non-empty string, got {conn_id!r}")
    if simulator is not None and not simulator.running:
        raise IterableConfigError("start the simulator first (with IterableSimulator() as sim: ...)")
    _require_migrated_database()
    with contextlib.ExitStack() as stack:
        sim = simulator if simulator is not None else stack.enter_context(IterableSimulator())
        extra = {**sim.webhook_connection_extra(), **dict(conn_extra or {})}
        stack.enter_context(_environment(f"AIRFLOW_CONN_{conn_id.upper()}", sim.connection_json(**extra)))
        serialize_dag(dag)
        return dag.test(**test_kwargs)


def serialize_dag(dag: DAG) -> None:
    """Write ``dag`` to Airflow's metadata database as the DAG processor would, so ``dag.test()`` runs it.

    :param dag: the DAG, wherever its file is (or none: a DAG built in a test).
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    names = list(manager.get_all_bundle_names())
    if not names:
        raise IterableConfigError("Airflow has no DAG bundle configured to serialize the DAG into")
    bundle = _DAGS_FOLDER_BUNDLE if _DAGS_FOLDER_BUNDLE in names else names[0]
    # An empty folder: the bag holds only this DAG, so no other DAG is parsed or changed.
    with tempfile.TemporaryDirectory() as empty:
        bag = DagBag(dag_folder=empty)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, bundle, None)


def _require_migrated_database() -> None:
    from airflow.utils.db import check_migrations

    try:
        check_migrations(timeout=1)
    except TimeoutError:
        from airflow.configuration import AIRFLOW_HOME

        raise IterableConfigError(
            f"Airflow's metadata database (AIRFLOW_HOME {AIRFLOW_HOME}) is not migrated: run "
            "`airflow db migrate` first, with AIRFLOW_HOME pointing at a home for tests"
        ) from None


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the duration, then restore its earlier state."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
