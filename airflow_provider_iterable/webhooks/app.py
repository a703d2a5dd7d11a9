"""The webhook receiver: a small FastAPI app that stores Iterable webhooks durably.

Checks run cheapest and safest first: method (405) → connection (404) → secret (401, before a
byte of the body is read) → content type (415) → size (413, counted while streaming) → parse
(400) → classify → durable append → 200. The answer is 2xx only after the event is committed;
503 with ``Retry-After`` when the queue cannot commit or the connection cannot be looked up.

The app reads the request itself (no pydantic models), so FastAPI's 422 never happens, and
every refusal is a small JSON body with a fixed text that never echoes the request.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_iterable import config
from airflow_provider_iterable.event_queue import EventQueue, QueueUnavailableError, notice_backend
from airflow_provider_iterable.exceptions import ConnectionLookupError, WebhookRejectedError
from airflow_provider_iterable.webhooks.body import (
    ClientGone,
    body_format,
    parse_form,
    parse_json_object,
    parse_query,
    read_body,
)
from airflow_provider_iterable.webhooks.classify import classify
from airflow_provider_iterable.webhooks.connections import ConnectionCache, make_lookup
from airflow_provider_iterable.webhooks.writer import GroupCommitWriter, Purger
from airflow_provider_iterable.webhooks.writer_process import ProcessWriter

log = logging.getLogger("airflow_provider_iterable.webhooks")

JOURNEY_METHODS = ["POST", "PUT", "PATCH", "GET", "DELETE"]

#: Bodies larger than this are parsed in a worker thread so the event loop stays responsive.
PARSE_IN_THREAD_BYTES = 64 * 1024

_DIGITS = re.compile(r"[0-9]{1,19}")


def _json_response(status: int, content: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(content, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return _json_response(status, {"status": "error", "detail": detail}, headers)


def _check_positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


class Receiver:
    """The state behind one app: settings, connection cache, writer and purger.

    Nothing here does I/O before the first request (or the app's start-up), so building the app
    while Airflow imports its plugins in a scheduler or worker costs nothing. Every parameter is
    :func:`create_app`'s, already checked there.

    :param queue_url: SQLAlchemy URL of the event queue; ``None`` reads the configuration.
    :param max_body_bytes: Largest body accepted; ``None`` reads the configuration.
    :param dedupe_window_seconds: Dedupe window; ``None`` reads the configuration.
    :param connection_lookup: Replacement connection lookup (tests), or ``None``.
    :param conn_cache_seconds: How long a found connection is reused.
    :param unknown_conn_cache_seconds: How long an unknown connection id stays unknown.
    :param retention_days: Age after which events are purged; ``None`` reads the configuration.
    :param purge_interval_seconds: Seconds between background purges; 0 disables them.
    :param store_events: ``False`` answers without storing (benchmark baseline).
    :param busy_timeout: Seconds a write waits for the queue's lock.
    :param retry_after_seconds: The ``Retry-After`` sent with a 503.
    :param max_batch: Most events committed in one transaction.
    :param writer: ``"process"`` or ``"thread"``.
    :param freeze_gc: Freeze the collector's generations after the first delivery.
    """

    def __init__(
        self,
        *,
        queue_url: str | None,
        max_body_bytes: int | None,
        dedupe_window_seconds: float | None,
        connection_lookup: Callable[[str], Any] | None,
        conn_cache_seconds: float,
        unknown_conn_cache_seconds: float,
        retention_days: float | None,
        purge_interval_seconds: float,
        store_events: bool,
        busy_timeout: float,
        retry_after_seconds: int,
        max_batch: int,
        writer: str,
        freeze_gc: bool,
    ) -> None:
        self._freeze_gc = freeze_gc
        self._queue_url = queue_url
        self._max_body_bytes = max_body_bytes
        self._dedupe_window = dedupe_window_seconds
        self._retention_days = retention_days
        self._purge_interval = purge_interval_seconds
        self._busy_timeout = busy_timeout
        self._max_batch = max_batch
        self.store_events = store_events
        self.retry_after = str(retry_after_seconds)
        self.connections = ConnectionCache(
            make_lookup(connection_lookup),
            found_ttl=conn_cache_seconds,
            unknown_ttl=unknown_conn_cache_seconds,
        )
        self._writer_mode = writer
        self.writer: GroupCommitWriter | ProcessWriter | None = None
        self.purger: Purger | None = None
        self.limit = 0

    def start(self) -> None:
        """Resolve the configuration and start the writer and purge threads (idempotent)."""
        if self.writer is not None:
            return
        # Read here, not in create_app: an invalid [iterable] value then fails the receiver's
        # start-up, not the import of the plugin in every scheduler and worker.
        self.limit = (
            self._max_body_bytes if self._max_body_bytes is not None else config.webhook_max_body_bytes()
        )
        dedupe_window = (
            self._dedupe_window if self._dedupe_window is not None else config.webhook_dedupe_window_seconds()
        )
        retention = (
            self._retention_days if self._retention_days is not None else config.webhook_retention_days()
        )
        queue_url = self._queue_url
        # Said at the receiver's start (and the triggerer's), where it helps: not by every
        # console command that opens the queue.
        notice_backend(queue_url if queue_url is not None else config.queue_url())
        busy_timeout = self._busy_timeout
        writer: GroupCommitWriter | ProcessWriter
        if self._writer_mode == "process":
            writer = ProcessWriter(
                queue_url,
                busy_timeout=busy_timeout,
                dedupe_window_seconds=dedupe_window,
                max_batch=self._max_batch,
                quick_failure_seconds=busy_timeout / 2,
            )
        else:
            writer = GroupCommitWriter(
                lambda: EventQueue(queue_url, busy_timeout=busy_timeout),
                dedupe_window_seconds=dedupe_window,
                max_batch=self._max_batch,
                quick_failure_seconds=busy_timeout / 2,
            )
        writer.start()
        if self.store_events and self._purge_interval > 0:
            self.purger = Purger(writer.queue, retention_days=retention, interval=self._purge_interval)
            self.purger.start()
        self.writer = writer

    async def astop(self) -> None:
        """Stop from the event loop: the writer process first (it belongs to this loop)."""
        if isinstance(self.writer, ProcessWriter):
            await self.writer.aclose()
        await asyncio.to_thread(self.stop)

    def stop(self) -> None:
        """Store what is pending and stop the background threads."""
        if self.purger is not None:
            self.purger.stop()
            self.purger = None
        if self.writer is not None:
            self.writer.stop()
            self.writer = None

    def _freeze(self) -> None:
        # The first lookup imported the rest of Airflow: hundreds of thousands of long-lived
        # objects. Moved out of the collector's reach once, they no longer make every full
        # collection pause the event loop (tens of milliseconds, the whole p99 otherwise).
        self._freeze_gc = False
        gc.collect()
        gc.freeze()

    async def health(self, request: Request) -> Response:
        """Answer 200 when the queue can take a write now, else 503 with ``Retry-After``.

        :param request: The ``GET /health`` request.
        """
        self.start()
        assert self.writer is not None
        writer = self.writer
        try:
            await asyncio.to_thread(lambda: writer.queue().ping())
        except QueueUnavailableError:
            return _error(503, "event queue unavailable", {"Retry-After": self.retry_after})
        return _json_response(200, {"status": "ok"})

    async def system(self, request: Request) -> Response:
        """Handle ``POST /webhooks/{conn_id}/system``.

        :param request: The delivery.
        """
        return await self._handle(request, "system", None)

    async def journey(self, request: Request) -> Response:
        """Handle ``/webhooks/{conn_id}/journeys[/{workflow_id}]`` with any journey method.

        :param request: The delivery.
        """
        path_id = request.path_params.get("workflow_id")
        if path_id is not None and not _DIGITS.fullmatch(path_id):
            return _error(404, "journey id must be a number")
        return await self._handle(request, "journey", path_id)

    async def _handle(self, request: Request, kind: str, path_id: str | None) -> Response:
        self.start()
        conn_id: str = request.path_params["conn_id"]
        try:
            auth = await self.connections.get(conn_id)
            if self._freeze_gc:
                self._freeze()
            if auth is None:
                raise WebhookRejectedError(404, "unknown connection")
            headers = request.headers
            if not auth.check(headers.get(auth.header_lower)):
                raise WebhookRejectedError(401, "missing or invalid webhook secret")
            payload, query = await self._read_payload(request, kind)
            event = classify(
                conn_id=conn_id, kind=kind, payload=payload, query=query, path_workflow_id=path_id
            )
        except WebhookRejectedError as exc:
            # The connection id is the sender's text: logged with %r, so it cannot forge lines.
            log.debug("Webhook %s for %r refused: %d %s", kind, conn_id, exc.status, exc.detail)
            return _error(exc.status, exc.detail)
        except ClientGone:
            return _error(400, "request body incomplete")
        except ConnectionLookupError:
            # The project may well exist: a 404 would make the sender give the delivery up.
            return _error(503, "connection lookup unavailable", {"Retry-After": self.retry_after})
        if not self.store_events:
            return _json_response(200, {"status": "discarded", "id": 0})
        assert self.writer is not None
        try:
            event_id, stored = await self.writer.append(event)
        except QueueUnavailableError as exc:
            log.warning("Webhook for %s not stored, answering 503: %s", conn_id, exc)
            return _error(503, "event queue unavailable", {"Retry-After": self.retry_after})
        log.debug(
            "Webhook %s for %s: event %d (%s)", kind, conn_id, event_id, "stored" if stored else "duplicate"
        )
        return _json_response(200, {"status": "stored" if stored else "duplicate", "id": event_id})

    async def _read_payload(self, request: Request, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
        headers = request.headers
        length_header = headers.get("content-length")
        chunked = "transfer-encoding" in headers
        if (
            kind == "journey"
            and request.method in ("GET", "DELETE")
            and not chunked
            and length_header in (None, "0")
        ):
            # A body-less journey call carries its data in the query string.
            query = parse_query(request.scope.get("query_string", b""))
            return dict(query), query
        fmt = body_format(headers.get("content-type"), allow_form=kind == "journey")
        declared: int | None = None
        if length_header is not None:
            try:
                declared = int(length_header)
            except ValueError:
                raise WebhookRejectedError(400, "invalid Content-Length") from None
        body = await read_body(request.receive, limit=self.limit, declared_length=declared)
        parse = parse_json_object if fmt == "json" else parse_form
        if len(body) > PARSE_IN_THREAD_BYTES:
            payload = await asyncio.to_thread(parse, body)
        else:
            payload = parse(body)
        return payload, parse_query(request.scope.get("query_string", b""))


def create_app(
    *,
    queue_url: str | None = None,
    max_body_bytes: int | None = None,
    dedupe_window_seconds: float | None = None,
    connection_lookup: Callable[[str], Any] | None = None,
    conn_cache_seconds: float = 30.0,
    unknown_conn_cache_seconds: float = 60.0,
    retention_days: float | None = None,
    purge_interval_seconds: float = 3600.0,
    store_events: bool = True,
    busy_timeout: float = 5.0,
    retry_after_seconds: int = 5,
    max_batch: int = 512,
    writer: str = "process",
    freeze_gc: bool = False,
) -> FastAPI:
    """Return the webhook receiver as a FastAPI (ASGI) app.

    Called with no arguments it reads the ``[iterable]`` configuration section, so
    ``uvicorn --factory airflow_provider_iterable.webhooks:create_app`` serves it; keyword
    arguments override single settings. Building the app does no I/O: the configuration is read
    and the queue opened at start-up or on the first request.

    :param queue_url: SQLAlchemy URL of the event queue; default ``[iterable] queue_url``.
    :param max_body_bytes: Largest body accepted; default ``[iterable] webhook_max_body_bytes``.
    :param dedupe_window_seconds: How long an identical delivery counts as a retry; default
        ``[iterable] webhook_dedupe_window_seconds``.
    :param connection_lookup: Replaces the Airflow connection lookup (tests only): takes a
        connection id, returns the connection's extra as a mapping, a ``WebhookAuth`` or ``None``.
    :param conn_cache_seconds: How long a found connection is reused before it is looked up again.
    :param unknown_conn_cache_seconds: How long an unknown connection id stays unknown.
    :param retention_days: Age after which events are purged; default
        ``[iterable] webhook_retention_days``.
    :param purge_interval_seconds: Seconds between background purges; 0 disables them.
    :param store_events: ``False`` answers 200 without storing anything (benchmark baseline only).
    :param busy_timeout: Seconds a write waits for the queue's lock before answering 503.
    :param retry_after_seconds: The ``Retry-After`` sent with a 503.
    :param max_batch: Most events committed in one transaction.
    :param writer: ``"process"`` (default) stores from a writer process beside the receiver, so
        database work never contends with the event loop for the interpreter lock;
        ``"thread"`` stores from a thread in the receiver's process (no extra process).
    :param freeze_gc: After the first delivery (when Airflow's modules are loaded), move every
        object alive into the garbage collector's permanent generation (:func:`gc.freeze`), so
        full collections stop pausing the event loop. Process-wide, so only for a process that
        serves the receiver alone (``iterable-webhooks serve`` sets it).
    """
    if max_body_bytes is not None and (
        isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes <= 0
    ):
        raise ValueError(f"max_body_bytes must be a positive int, got {max_body_bytes!r}")
    _check_positive("dedupe_window_seconds", dedupe_window_seconds, allow_zero=True)
    _check_positive("conn_cache_seconds", conn_cache_seconds, allow_zero=True)
    _check_positive("unknown_conn_cache_seconds", unknown_conn_cache_seconds, allow_zero=True)
    _check_positive("retention_days", retention_days, allow_zero=True)
    _check_positive("purge_interval_seconds", purge_interval_seconds, allow_zero=True)
    _check_positive("busy_timeout", busy_timeout)
    _check_positive("retry_after_seconds", retry_after_seconds)
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be an int >= 1, got {max_batch!r}")
    if writer not in ("process", "thread"):
        raise ValueError(f"writer must be 'process' or 'thread', got {writer!r}")
    if connection_lookup is not None and not callable(connection_lookup):
        raise ValueError("connection_lookup must be callable")

    receiver = Receiver(
        queue_url=queue_url,
        max_body_bytes=max_body_bytes,
        dedupe_window_seconds=dedupe_window_seconds,
        connection_lookup=connection_lookup,
        conn_cache_seconds=conn_cache_seconds,
        unknown_conn_cache_seconds=unknown_conn_cache_seconds,
        retention_days=retention_days,
        purge_interval_seconds=purge_interval_seconds,
        store_events=bool(store_events),
        busy_timeout=busy_timeout,
        retry_after_seconds=int(retry_after_seconds),
        max_batch=max_batch,
        writer=writer,
        freeze_gc=bool(freeze_gc),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        receiver.start()
        try:
            yield
        finally:
            # Commit what is pending before the process goes (a graceful stop loses nothing).
            await receiver.astop()

    app = FastAPI(
        title="Iterable webhooks",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.receiver = receiver

    async def http_error(request: Request, exc: Exception) -> Response:
        # 404 for unknown paths and 405 for a wrong method, as JSON, with Starlette's Allow header.
        assert isinstance(exc, StarletteHTTPException)
        detail = {404: "not found", 405: "method not allowed"}.get(exc.status_code, "request refused")
        return _error(exc.status_code, detail, dict(exc.headers or {}))

    async def bad_request(request: Request, exc: Exception) -> Response:
        return _error(400, "malformed request")

    app.add_exception_handler(StarletteHTTPException, http_error)
    # Only reachable if some FastAPI machinery validated something; never answer its 422.
    from fastapi.exceptions import RequestValidationError

    app.add_exception_handler(RequestValidationError, bad_request)

    # Plain Starlette routes: no dependency injection or body models, nothing to validate.
    app.add_route("/health", receiver.health, methods=["GET"], include_in_schema=False)
    app.add_route("/webhooks/{conn_id}/system", receiver.system, methods=["POST"], include_in_schema=False)
    app.add_route(
        "/webhooks/{conn_id}/journeys/{workflow_id}",
        receiver.journey,
        methods=JOURNEY_METHODS,
        include_in_schema=False,
    )
    app.add_route(
        "/webhooks/{conn_id}/journeys", receiver.journey, methods=JOURNEY_METHODS, include_in_schema=False
    )
    return app


def create_standalone_app() -> FastAPI:
    """Return the app for a process that serves nothing else (``iterable-webhooks serve``).

    As :func:`create_app` with no arguments, plus ``freeze_gc=True``.
    """
    return create_app(freeze_gc=True)
