"""Sensors that wait for an Iterable webhook event (system or journey) to reach the event queue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import BaseSensorOperator, Context
from airflow.sdk.bases.sensor import PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from airflow_provider_iterable._values import KINDS, MISSING, lookup_path, pick_paths
from airflow_provider_iterable.event_queue import EventQueue, QueueUnavailableError
from airflow_provider_iterable.event_queue.filters import parse_since
from airflow_provider_iterable.event_queue.scan import scan_sync
from airflow_provider_iterable.failures import IterableArgumentError, IterableTaskFailedError, argument_errors
from airflow_provider_iterable.triggers.polling import DEFAULT_POLL_INTERVAL
from airflow_provider_iterable.triggers.webhook import IterableWebhookTrigger


class IterableWebhookSensor(BaseSensorOperator):
    """Wait for an Iterable webhook event that matches the filters, and return it.

    The receiver (``/iterable/webhooks/<conn_id>/system`` or ``.../journeys/<id>``) stores every
    delivery in the event queue; this sensor finds the first matching event received since the
    DAG run started (or since ``since``), so an event that arrived between an upstream send and
    the sensor's start is not missed. Sensors observe, they don't consume: several sensors may
    wait for the same event and all of them complete.

    It defers by default (``deferrable=True`` whatever ``[operators] default_deferrable`` says:
    a webhook can take days, and a worker slot held that long is never the right default). With
    ``deferrable=False`` it pokes (``mode="poke"`` or ``"reschedule"``) through the same check.

    Returns (XCom) the matched event: ``{"id", "received_at", "conn_id", "kind", "event_name",
    "workflow_id", "campaign_id", "email", "user_id", "payload", "query"}``, limited to
    ``xcom_fields`` when given, since XCom lives in Airflow's database and payloads hold personal
    data.

    :param iterable_conn_id: Only events received through this connection's webhook URLs.
        (templated)
    :param kind: ``"system"``, ``"journey"`` or ``None`` for either. (templated)
    :param event_name: The payload's ``eventName``, e.g. ``emailOpen``. (templated)
    :param workflow_id: A journey event's id, or a system event's ``dataFields.workflowId``; a
        rendered ``"3001"`` is accepted. (templated)
    :param match: Dotted payload path -> expected value, e.g.
        ``{"email": "{{ params.email }}", "dataFields.campaignId": 42}``. Values compare as JSON,
        except that a string equals a number or boolean whose string form it is, either way round
        (form bodies carry only strings, and templated values render as strings). (templated)
    :param since: ISO-8601 time (or datetime) from which events count; default the DAG run's
        start. (templated)
    :param expected_fields: Dotted payload paths the matched event must carry; a missing one
        fails the task (``AirflowFailException``) instead of handing downstream tasks a payload
        they cannot use.
    :param payload_schema: A JSON Schema the matched payload must satisfy (checked with
        ``jsonschema``); a violation fails the task naming the error.
    :param xcom_fields: Dotted paths into the event dict to push to XCom, e.g.
        ``["id", "payload.email"]``; ``None`` pushes the whole event.
    :param queue_poll_interval: Seconds between two reads of the queue by the trigger while
        nothing arrives. Default 0.2.
    :param queue_url: SQLAlchemy URL of the event queue; ``None`` (default) reads
        ``[iterable] queue_url`` at run time. Keep passwords out of DAG code: a URL given here is
        stored with the deferred trigger.
    :param deferrable: Wait in the triggerer (default True).
    """

    template_fields: Sequence[str] = (
        "iterable_conn_id",
        "kind",
        "event_name",
        "workflow_id",
        "match",
        "since",
    )
    ui_color = "#f3e8ff"

    def __init__(
        self,
        *,
        iterable_conn_id: str = "iterable_default",
        kind: str | None = None,
        event_name: str | None = None,
        workflow_id: int | str | None = None,
        match: dict[str, Any] | None = None,
        since: str | datetime | None = None,
        expected_fields: Sequence[str] | None = None,
        payload_schema: dict[str, Any] | None = None,
        xcom_fields: Sequence[str] | None = None,
        queue_poll_interval: float = DEFAULT_POLL_INTERVAL,
        queue_url: str | None = None,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if match is not None and not isinstance(match, dict):
            raise IterableArgumentError(
                f"match must be a dict of dotted payload paths to values, got {match!r}"
            )
        for name, paths in (("expected_fields", expected_fields), ("xcom_fields", xcom_fields)):
            if paths is not None and (
                isinstance(paths, str) or not all(isinstance(p, str) and p for p in paths)
            ):
                raise IterableArgumentError(f"{name} must be a list of dotted paths, got {paths!r}")
        if payload_schema is not None:
            if not isinstance(payload_schema, dict):
                raise IterableArgumentError(
                    f"payload_schema must be a JSON Schema dict, got {payload_schema!r}"
                )
            import jsonschema

            try:
                jsonschema.validators.validator_for(payload_schema).check_schema(payload_schema)
            except jsonschema.SchemaError as exc:
                raise IterableArgumentError(
                    f"payload_schema is not a valid JSON Schema: {exc.message}"
                ) from None
        self.iterable_conn_id = iterable_conn_id
        self.kind = kind
        self.event_name = event_name
        self.workflow_id = workflow_id
        self.match = match
        self.since = since
        self.expected_fields = list(expected_fields) if expected_fields is not None else None
        self.payload_schema = payload_schema
        self.xcom_fields = list(xcom_fields) if xcom_fields is not None else None
        self.queue_poll_interval = queue_poll_interval
        self.queue_url = queue_url
        self.deferrable = deferrable

    # -- arguments after rendering -------------------------------------------------------------

    def _workflow_id(self) -> int | None:
        value = self.workflow_id
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise IterableArgumentError(f"workflow_id must be a journey id (an integer), got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        raise IterableArgumentError(f"workflow_id must be a journey id (an integer), got {value!r}")

    def _window_start(self, context: Context) -> str:
        """Return the window's start: ``since``, else the DAG run's start (ISO-8601, UTC)."""
        since = self.since
        if isinstance(since, datetime):
            return since.isoformat()
        if since not in (None, ""):
            parsed = parse_since(str(since))
            assert parsed is not None
            return parsed.isoformat()
        dag_run = context.get("dag_run")
        for attr in ("start_date", "queued_at", "run_after", "logical_date"):
            value = getattr(dag_run, attr, None)
            if isinstance(value, datetime):
                return value.isoformat()
        raise IterableArgumentError(
            "since is not set and the DAG run has no start date: pass since= (an ISO-8601 time)"
        )

    def build_trigger(self, context: Context, *, deadline: datetime | None = None) -> IterableWebhookTrigger:
        """Return the trigger this sensor defers to, with its window fixed in its arguments.

        :param context: The task's context (the DAG run's start opens the window).
        :param deadline: When the trigger stops waiting (the sensor's timeout from now), or
            ``None`` for no deadline of its own.
        """
        if self.kind is not None and self.kind not in KINDS:
            raise IterableArgumentError(f"kind must be one of {KINDS} or None, got {self.kind!r}")
        # The trigger checks the rendered values; a bad one fails the task at once.
        with argument_errors():
            return IterableWebhookTrigger(
                iterable_conn_id=self.iterable_conn_id,
                kind=self.kind,
                event_name=self.event_name or None,
                workflow_id=self._workflow_id(),
                match=self.match or None,
                since=self._window_start(context),
                poll_interval=self.queue_poll_interval,
                queue_url=self.queue_url,
                mode="sensor",
                deadline=deadline.isoformat() if deadline is not None else None,
            )

    def _deadline(self) -> datetime | None:
        """Return when a wait that starts now must end: now plus ``timeout`` (``None`` if unbounded)."""
        try:
            return datetime.now(timezone.utc) + timedelta(seconds=self.timeout)
        except OverflowError:  # a timeout of centuries: no deadline of the trigger's own
            return None

    # -- the check and its result -------------------------------------------------------------

    def _check_once(self, trigger: IterableWebhookTrigger) -> dict[str, Any] | None:
        """Scan the window once (synchronously); return the first matching event dict."""
        queue = EventQueue(trigger.queue_url)
        try:
            found, _ = scan_sync(
                queue, trigger.webhook_filter, after_id=trigger.after_id or 0, first_only=True
            )
        finally:
            queue.close()
        return found[0].to_dict() if found else None

    def _result(self, event: dict[str, Any]) -> dict[str, Any]:
        """Check the matched event against the expectations and return what goes to XCom."""
        payload = event.get("payload")
        for path in self.expected_fields or ():
            if lookup_path(payload, path) is MISSING:
                raise IterableTaskFailedError(
                    f"Webhook event {event.get('id')} lacks the expected field {path!r} "
                    f"(expected_fields={self.expected_fields!r})"
                )
        if self.payload_schema is not None:
            import jsonschema

            validator_cls = jsonschema.validators.validator_for(self.payload_schema)
            error = jsonschema.exceptions.best_match(validator_cls(self.payload_schema).iter_errors(payload))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                raise IterableTaskFailedError(
                    f"Webhook event {event.get('id')} does not satisfy payload_schema at {where}: "
                    f"{error.message}"
                )
        self.log.info(
            "Webhook event %s matched (%s %s).", event.get("id"), event.get("kind"), event.get("event_name")
        )
        if self.xcom_fields is not None:
            return pick_paths(event, self.xcom_fields)
        return event

    def poke(self, context: Context) -> PokeReturnValue:
        """Check the queue once for a matching event in the window; an unreadable queue is "not yet".

        :param context: The task's context (the DAG run's start opens the window).
        """
        trigger = self.build_trigger(context)
        self.log.info("Checking the event queue for an Iterable webhook received since %s.", trigger.since)
        try:
            event = self._check_once(trigger)
        except QueueUnavailableError as exc:
            # A queue restarting or locked fails this check, not the task: the next poke (or
            # reschedule) reads again, as the trigger does when it waits deferred.
            self.log.warning("Could not read the event queue (%s); checking again at the next poke.", exc)
            return PokeReturnValue(is_done=False)
        if event is None:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._result(event))

    def execute(self, context: Context) -> Any:
        """Check once; if nothing matched yet, defer to the trigger (or poke when not deferrable).

        :param context: The task's context (the DAG run's start opens the window).
        """
        if not self.deferrable:
            return super().execute(context)
        # The deadline travels in the trigger's arguments: Airflow's triggerer enforces the
        # deferral timeout, but dag.test() runs the trigger itself and enforces none.
        trigger = self.build_trigger(context, deadline=self._deadline())
        try:
            event = self._check_once(trigger)
        except QueueUnavailableError as exc:
            # The trigger retries reads itself; no reason to fail the task here.
            self.log.warning("Could not read the event queue before deferring (%s); deferring anyway.", exc)
            event = None
        if event is not None:
            return self._result(event)
        self.log.info(
            "Waiting for an Iterable webhook (%s) received since %s (deadline %s).",
            _describe(trigger),
            trigger.since,
            trigger.deadline or "none",
        )
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired: return the matched event, or fail on an error event.

        :param context: The task's context.
        :param event: The trigger event's payload.
        :raises AirflowSensorTimeout: when the trigger reached the deadline first (with
            ``soft_fail``, Airflow skips the task instead).
        """
        if event and event.get("status") == "timeout":
            raise AirflowSensorTimeout(
                f"No matching Iterable webhook arrived within the sensor's timeout of {self.timeout} s "
                f"(deadline {event.get('deadline')})."
            )
        if not event or event.get("status") != "success" or not isinstance(event.get("event"), dict):
            message = (event or {}).get("message", "no event")
            raise AirflowException(f"The Iterable webhook trigger ended without an event: {message}")
        return self._result(event["event"])


def _describe(trigger: IterableWebhookTrigger) -> str:
    """Name the filters for a log line; match values stay out (they often hold e-mail addresses)."""
    parts = [f"connection {trigger.iterable_conn_id}"]
    parts += [
        f"{name}={value!r}"
        for name in ("kind", "event_name", "workflow_id")
        if (value := getattr(trigger, name))
    ]
    if trigger.match:
        parts.append("matching " + ", ".join(sorted(trigger.match)))
    return "; ".join(parts)


class IterableSystemWebhookSensor(IterableWebhookSensor):
    """Wait for an Iterable system webhook event (``emailSend``, ``emailOpen``, ``smsSend``, ...).

    :param event_name: The system event's ``eventName``. (templated)

    Every other argument is :class:`IterableWebhookSensor`'s.
    """

    def __init__(self, *, event_name: str, **kwargs: Any) -> None:
        if "kind" in kwargs:
            raise IterableArgumentError(
                "IterableSystemWebhookSensor always waits for kind='system'; do not pass kind"
            )
        super().__init__(event_name=event_name, kind="system", **kwargs)


class IterableWorkflowWebhookSensor(IterableWebhookSensor):
    """Wait for a journey (workflow) webhook tile's call.

    :param workflow_id: The journey id, as in the webhook URL ``.../journeys/<workflow_id>``.
        (templated)

    Every other argument is :class:`IterableWebhookSensor`'s.
    """

    def __init__(self, *, workflow_id: int | str, **kwargs: Any) -> None:
        if "kind" in kwargs:
            raise IterableArgumentError(
                "IterableWorkflowWebhookSensor always waits for kind='journey'; do not pass kind"
            )
        super().__init__(workflow_id=workflow_id, kind="journey", **kwargs)


__all__ = ["IterableSystemWebhookSensor", "IterableWebhookSensor", "IterableWorkflowWebhookSensor"]
