"""The webhook half of the demo: a deferred sensor woken by Iterable's ``smsSend``, and an event-driven DAG.

Called by ``run_demo.py`` after the onboarding run, with the same Airflow home, simulator and
embedded SQLite event queue:

1. :func:`start_webhook_receiver` starts the receiver standalone (``iterable-webhooks serve``) and
   points the simulator's system webhooks at it, with the connection's webhook secret.
2. :func:`run_webhook_sensor` runs ``example_iterable_webhook_sensor`` with ``dag.test()``: it sends
   an SMS, the simulator fires ``smsSend`` to the receiver, the sensor matches the stored event
   (deferred until it arrives, or at its first check when the webhook was faster) and a
   downstream task prints it.
3. :func:`run_event_driven` starts Airflow's scheduler, DAG processor, triggerer and API server
   (``dag.test()`` does not run asset watchers), starts journey 3001 for two users in the
   simulator, whose webhook tile calls the receiver, and waits for
   ``example_iterable_event_driven`` to run for those webhooks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DAGS = REPO / "example_dags"
WEBHOOK_SECRET = "demo-webhook-secret"
SENSOR_DAG_ID = "example_iterable_webhook_sensor"
EVENT_DRIVEN_DAG_ID = "example_iterable_event_driven"
JOURNEY_ID = 3001  # the journey example_iterable_event_driven watches


def _stop_process_group(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def start_webhook_receiver(stack: ExitStack, services: Any) -> str:
    """Start the standalone receiver on a free port; send the simulator's webhooks to it.

    :return: The receiver's base URL.
    """
    sim = services.simulator
    # The connection now also carries the webhook secret the receiver checks.
    os.environ["AIRFLOW_CONN_ITERABLE_DEFAULT"] = sim.connection_json(webhook_secrets=[WEBHOOK_SECRET])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from airflow_provider_iterable.webhooks.cli import main; sys.exit(main())",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-level",
            "warning",
        ],
        env=os.environ.copy(),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    stack.callback(_stop_process_group, proc)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    url = None
    for line in proc.stderr:
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            url = found.group(1)
            break
        if time.monotonic() > deadline:
            break
    if url is None:
        raise RuntimeError("the webhook receiver did not start")
    # Keep draining its stderr so the receiver never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stderr or ()], daemon=True).start()
    sim.webhook_url = f"{url}/webhooks/iterable_default/system"
    sim.webhook_headers = {"Authorization": f"Bearer {WEBHOOK_SECRET}"}
    services.extra["receiver_url"] = url
    print(f"\nWebhook receiver (standalone) listening on {url}, storing into the SQLite event queue")
    return url


def _xcom(run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(run_id=run.run_id, key="return_value", dag_ids=run.dag_id, task_ids=task_id)
    with create_session() as session:
        rows = session.scalars(query).all()
    return XComModel.deserialize_value(rows[0]) if rows else None


def run_webhook_sensor(services: Any, email: str) -> bool:
    """Send an SMS and wait for its ``smsSend`` webhook with the deferrable sensor (``dag.test()``)."""
    from airflow.dag_processing.dagbag import DagBag

    sim = services.simulator
    bag = DagBag(dag_folder=str(EXAMPLE_DAGS / f"{SENSOR_DAG_ID}.py"))
    if bag.import_errors:
        raise RuntimeError(f"the sensor DAG does not import: {bag.import_errors}")
    print(f"\nRunning {SENSOR_DAG_ID} with dag.test(): SMS to {email}, then wait for smsSend ...")
    started = time.monotonic()
    run = bag.dags[SENSOR_DAG_ID].test(run_conf={"email": email, "campaign_id": 2001})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print(f"DAG run finished in {time.monotonic() - started:.1f} s: {run.state}")
    for task_id, state in states.items():
        print(f"  {task_id:<22} {state}")
    delivered = [
        (status, body) for status, body in sim.webhook_deliveries if body.get("eventName") == "smsSend"
    ]
    for status, body in delivered:
        print(f"Simulator fired smsSend to the receiver (HTTP {status}): {json.dumps(body, sort_keys=True)}")
    event = _xcom(run, "wait_for_sms_send")
    if event:
        print(f"The sensor matched queue event {event['id']} (XCom): {json.dumps(event, sort_keys=True)}")
        print(
            f"Downstream task printed: Iterable sent the SMS: message "
            f"{event['payload']['dataFields']['messageId']} to {event['email']}"
        )
    return str(run.state) == "success" and all(state == "success" for state in states.values())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_airflow(stack: ExitStack, home: Path) -> dict[str, str]:
    """Start scheduler, DAG processor, triggerer and API server; return their environment."""
    port = _free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
    }
    logs = home / "logs-demo"
    logs.mkdir(exist_ok=True)
    for name, args in (
        ("api-server", ["api-server", "--port", str(port)]),
        ("dag-processor", ["dag-processor"]),
        ("scheduler", ["scheduler"]),
        ("triggerer", ["triggerer"]),
    ):
        with (logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        stack.callback(_stop_process_group, proc)
    print(
        f"Started Airflow's API server (port {port}), DAG processor, scheduler and triggerer; logs in {logs}"
    )
    return env


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(Exception):
            if predicate():
                return
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def run_event_driven(services: Any, home: Path) -> bool:
    """Start a journey for two users; the journey's webhook tile runs the event-driven DAG."""
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    from airflow_provider_iterable.event_queue import EventQueue, WebhookFilter
    from airflow_provider_iterable.hooks.iterable import IterableHook
    from airflow_provider_iterable.triggers import IterableWebhookTrigger

    sim = services.simulator
    receiver = services.extra["receiver_url"]
    sim.add_workflow(
        JOURNEY_ID,
        webhook_url=f"{receiver}/webhooks/iterable_default/journeys/{JOURNEY_ID}",
        webhook_headers={"Authorization": WEBHOOK_SECRET},
    )
    print(f"\nEvent-driven DAG {EVENT_DRIVEN_DAG_ID}: runs for each webhook of journey {JOURNEY_ID}")
    consumer = IterableWebhookTrigger(workflow_id=JOURNEY_ID, kind="journey").consumer_name
    queue = EventQueue()
    # dag.test() leaves the sensor's finished trigger in the metadata database; removed now, it
    # cannot be mistaken for the watcher's trigger, which may get the same id on SQLite.
    Trigger.clean_unused()
    with ExitStack() as stack:
        _start_airflow(stack, home)
        _wait(lambda: DagModel.get_dagmodel(EVENT_DRIVEN_DAG_ID) is not None, 120, "the DAG to be parsed")
        with create_session() as session:  # example DAGs start paused; a paused DAG's asset is not watched
            session.execute(
                update(DagModel).where(DagModel.dag_id == EVENT_DRIVEN_DAG_ID).values(is_paused=False)
            )
        _wait(
            lambda: queue.get_cursor(consumer) is not None, 120, "the asset watcher to start in the triggerer"
        )
        print("The asset watcher is running in the triggerer; starting the journey for two users ...")
        hook = IterableHook()

        def handled() -> set[int]:
            """Queue ids the successful runs of the event-driven DAG handled (their XComs)."""
            ids: set[int] = set()
            with create_session() as session:
                runs = session.scalars(
                    select(DagRun).where(DagRun.dag_id == EVENT_DRIVEN_DAG_ID, DagRun.state == "success")
                ).all()
                for run in runs:
                    query = XComModel.get_many(
                        run_id=run.run_id, key="return_value", dag_ids=run.dag_id, task_ids="handle"
                    )
                    for row in session.scalars(query).all():
                        ids.update(XComModel.deserialize_value(row) or [])
            return ids

        # One user at a time: Airflow folds asset events that arrive together into one run.
        expected: set[int] = set()
        for email in ("ada@example.com", "grace@example.com"):
            before = queue.head_id()
            hook.trigger_workflow(workflow_id=JOURNEY_ID, email=email, data_fields={"source": "demo"})
            sim.wait_for_webhooks(timeout=30)
            (event,) = queue.fetch(WebhookFilter(kind="journey", workflow_id=JOURNEY_ID), after_id=before)
            print(
                f"Journey {JOURNEY_ID} called its webhook tile for {email}: stored as queue event {event.id}"
            )
            _wait(lambda event_id=event.id: event_id in handled(), 120, f"a run handling event {event.id}")
            print(f"  {EVENT_DRIVEN_DAG_ID} ran for it: {json.dumps(event.payload, sort_keys=True)}")
            expected.add(event.id)
        done = handled()
        print(f"{EVENT_DRIVEN_DAG_ID} handled journey webhooks {sorted(done)}")
        ok = done == expected
    queue.close()
    return ok


def run_webhook_scenarios(services: Any, home: Path, welcome_email: str) -> bool:
    """Run both webhook scenarios after the onboarding run; return whether both succeeded.

    :param services: The demo's running services (the simulator).
    :param home: The demo's Airflow home.
    :param welcome_email: A user the onboarding run loaded, to text and wait for.
    """
    with ExitStack() as stack:
        start_webhook_receiver(stack, services)
        sensor_ok = run_webhook_sensor(services, welcome_email)
        event_driven_ok = run_event_driven(services, home)
    print("\nWebhook demo " + ("succeeded." if sensor_ok and event_driven_ok else "FAILED."))
    return sensor_ok and event_driven_ok
