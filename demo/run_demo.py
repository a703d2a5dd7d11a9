"""Run the onboarding example DAG end to end against a local Iterable simulator.

``make demo`` runs this file. It needs nothing but the installed project: Airflow gets an isolated
home in ``.airflow-demo/`` (recreated on every run), the simulator stands in for Iterable on
loopback, and the ``iterable_default`` connection points at it. The script then runs
``example_dags/example_iterable_onboarding.py`` with ``dag.test()`` and prints what the simulated
Iterable received.

After it, ``demo/webhooks_demo.py`` shows the webhooks: an SMS whose ``smsSend`` webhook wakes a
deferred sensor, and an event-driven DAG run by a journey's webhook.

The steps are separate functions (:func:`prepare_airflow_home`, :func:`start_services`,
:func:`write_demo_data`, :func:`run_onboarding`, :func:`report`) so further scenarios can be
added beside the onboarding run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEMO_HOME = REPO / ".airflow-demo"
EXAMPLE_DAGS = REPO / "example_dags"
ONBOARDING_DAG_ID = "example_iterable_onboarding"
DEMO_USERS = 2_500
SMS_CAMPAIGN_ID = 2001  # seeded in the simulator as an SMS campaign


@dataclass
class Services:
    """What the demo started; stopped when the surrounding ``ExitStack`` closes."""

    simulator: Any
    extra: dict[str, Any] = field(default_factory=dict)


def prepare_airflow_home(home: Path = DEMO_HOME) -> Path:
    """Point Airflow at a fresh, isolated home (must run before Airflow is imported) and migrate it."""
    if "airflow" in sys.modules:
        raise RuntimeError("prepare_airflow_home() must run before Airflow is imported")
    shutil.rmtree(home, ignore_errors=True)
    (home / "data").mkdir(parents=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__ITERABLE__QUEUE_URL": f"sqlite:///{home / 'iterable_webhooks.db'}",
            # The task logs of dag.test() are long; the demo prints its own account instead.
            "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("DEMO_LOG_LEVEL", "WARNING"),
        }
    )
    print(f"Airflow home: {home}")
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    print(f"Metadata database migrated in {time.monotonic() - started:.1f} s")
    return home


def start_services(stack: ExitStack) -> Services:
    """Start the Iterable simulator and point the ``iterable_default`` connection at it."""
    from airflow_provider_iterable.testing import IterableSimulator

    simulator = stack.enter_context(IterableSimulator())
    os.environ["AIRFLOW_CONN_ITERABLE_DEFAULT"] = simulator.connection_json()
    print(f"Iterable simulator listening on {simulator.url}")
    return Services(simulator=simulator)


def write_demo_data(directory: Path, count: int = DEMO_USERS) -> Path:
    """Write ``count`` new users as JSON Lines, one Iterable-shaped user per line; return the path."""
    path = directory / "new_users.jsonl"
    plans = ("free", "pro", "team")
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            user = {
                "email": f"new.user{i:05d}@example.com",
                "dataFields": {"firstName": f"User{i}", "plan": plans[i % 3], "signupIndex": i},
            }
            handle.write(json.dumps(user) + "\n")
    print(f"Wrote {count:,} users to {path}")
    return path


def run_onboarding(users_file: Path) -> Any:
    """Run the onboarding example DAG once with ``dag.test()``; return its DAG run."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS / "example_iterable_onboarding.py"))
    if bag.import_errors:
        raise RuntimeError(f"the onboarding DAG does not import: {bag.import_errors}")
    dag = bag.dags[ONBOARDING_DAG_ID]
    with users_file.open(encoding="utf-8") as handle:
        welcome_email = json.loads(handle.readline())["email"]
    print(f"Running {ONBOARDING_DAG_ID} with dag.test() ...")
    started = time.monotonic()
    run = dag.test(
        run_conf={
            "users_file": str(users_file),
            "welcome_email": welcome_email,
            "sms_campaign_id": SMS_CAMPAIGN_ID,
        }
    )
    print(f"DAG run {run.run_id} finished in {time.monotonic() - started:.1f} s: {run.state}")
    return run


def _task_states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _xcom(run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(run_id=run.run_id, key="return_value", dag_ids=run.dag_id, task_ids=task_id)
    with create_session() as session:
        rows = session.scalars(query).all()
    return XComModel.deserialize_value(rows[0]) if rows else None


def report(services: Services, run: Any) -> bool:
    """Print what the simulated Iterable received and return whether the run fully succeeded."""
    sim = services.simulator
    print("\nTask states:")
    states = _task_states(run)
    for task_id, state in states.items():
        print(f"  {task_id:<22} {state}")

    print("\nRequests Iterable received (endpoint: count, HTTP statuses):")
    by_endpoint: Counter[str] = Counter()
    statuses: dict[str, Counter[int]] = {}
    for request in sim.requests:
        by_endpoint[request.endpoint] += 1
        statuses.setdefault(request.endpoint, Counter())[request.status] += 1
    for endpoint, count in by_endpoint.items():
        codes = ", ".join(f"{code}x{n}" for code, n in sorted(statuses[endpoint].items()))
        print(f"  {endpoint:<34} {count:>3}  ({codes})")
    print(f"  rate-limited answers (429): {sim.rate_limited_count()}")

    summary = _xcom(run, "load_users")
    if summary:
        print(
            f"\nBulk upsert summary (XCom): {summary['successCount']:,} users upserted, "
            f"{summary['failCount']} failed, in {summary['batches']} batches; "
            f"fields created: {', '.join(summary['createdFields'])}"
        )
    bulk_calls = sim.requests_for("POST /api/users/bulkUpdate")
    if bulk_calls:
        sample_email = bulk_calls[0].json["users"][0]["email"]
        print(f"\nSample user as Iterable holds it ({sample_email}):")
        print("  " + json.dumps(sim.get_user(email=sample_email), sort_keys=True, default=str))

    list_id = _xcom(run, "create_list")
    if list_id is not None:
        info = sim.lists[list_id]
        members = sorted(sim.list_members(list_id))
        print(f"\nList {list_id} {info['name']!r}: {len(members):,} members, e.g. {', '.join(members[:3])}")

    for event in sim.events:
        print(f"\nEvent tracked: {json.dumps(event, sort_keys=True, default=str)}")
    for send in sim.sends:
        print(f"SMS/e-mail send: {json.dumps(send, sort_keys=True, default=str)}")

    ok = str(run.state) == "success" and all(state == "success" for state in states.values())
    print("\nDemo " + ("succeeded." if ok else "FAILED: see the task states above."))
    return ok


@contextmanager
def services_running() -> Iterator[Services]:
    """Start the demo's services for the duration of a ``with`` block."""
    with ExitStack() as stack:
        yield start_services(stack)


def main() -> int:
    """Run the demo; return the process exit code."""
    home = prepare_airflow_home()
    with services_running() as services:
        users_file = write_demo_data(home / "data")
        run = run_onboarding(users_file)
        ok = report(services, run)
        # Then the webhooks: an SMS whose smsSend wakes a deferred sensor, and an event-driven DAG.
        from webhooks_demo import run_webhook_scenarios

        with users_file.open(encoding="utf-8") as handle:
            welcome_email = json.loads(handle.readline())["email"]
        ok = run_webhook_scenarios(services, home, welcome_email) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
