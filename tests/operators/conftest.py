"""Run DAGs of Iterable operators through Airflow (``dag.test()``) against the simulator."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def run_dag(dag: Any, **test_kwargs: Any) -> Any:
    """Serialize ``dag`` into the metadata database the way the DAG processor would, then ``dag.test()`` it.

    ``dag.test()`` in Airflow 3.3 runs a DAG only once it is serialized from a bundle; a DAG built
    inside a test module is in no bundle, so it is written to the database here first.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    with tempfile.TemporaryDirectory() as empty:
        bag = DagBag(dag_folder=empty)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    return dag.test(**test_kwargs)


def states(dag_run: Any) -> dict[str, str]:
    """Return ``{task_id: state}`` (``task_id[i]`` for mapped instances) of a finished run."""
    out = {}
    for ti in dag_run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        out[key] = str(ti.state)
    return out


def xcom(
    dag_run: Any, task_id: str, map_index: int = -1, key: str = "return_value", *, required: bool = True
) -> Any:
    """Return what ``task_id`` pushed to XCom in ``dag_run`` (``None`` if nothing and not ``required``)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(
        run_id=dag_run.run_id,
        key=key,
        dag_ids=dag_run.dag_id,
        task_ids=task_id,
        map_indexes=map_index,
    )
    with create_session() as session:
        rows = session.scalars(query).all()
    if not rows and not required:
        return None
    assert rows, f"{task_id} pushed no XCom {key!r}"
    return XComModel.deserialize_value(rows[0])


@pytest.fixture
def dag_runner(airflow_db: Any, simulator: Any) -> Iterator[Callable[[Any], Any]]:
    """Return :func:`run_dag` with the metadata database migrated and the simulator running."""
    yield run_dag
