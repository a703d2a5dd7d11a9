"""The receiver behind one app: its background parts, and the handling of each delivery.

A delivery goes through the checks cheapest and safest first: connection (404) → secret (401,
before a byte of the body is read) → content type (415) → size (413, counted while streaming)
→ parse (400) → classify → durable append → 200. The method (405) was checked by the router.
The answer is 2xx only after the event is committed; 503 with ``Retry-After`` when the queue
cannot commit or the connection cannot be looked up.
"""

from __future__ import annotations

import asyncio
import gc
import logging

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_iterable import config
from airflow_provider_iterable._values import ID_DIGITS
from airflow_provider_iterable.event_queue import EventQueue, NewEvent, QueueUnavailableError, notice_backend
from airflow_provider_iterable.exceptions import (
    ConnectionLookupError,
    IterableConfigError,
    WebhookRejectedError,
)
from airflow_provider_iterable.webhooks.auth import Refusal
from airflow_provider_iterable.webhooks.body import ClientGone, read_payload
from airflow_provider_iterable.webhooks.classify import classify
from airflow_provider_iterable.webhooks.connections import ConnectionCache, make_lookup
from airflow_provider_iterable.webhooks.refusals import RefusalLog, sender_address
from airflow_provider_iterable.webhooks.responses import error_response, json_response
from airflow_provider_iterable.webhooks.settings import ReceiverSettings
from airflow_provider_iterable.webhooks.writer import GroupCommitWriter, Purger
from airflow_provider_iterable.webhooks.writer_process import ProcessWriter

log = logging.getLogger("airflow_provider_iterable.webhooks")

#: Refusals about the secret header, whose name the log line adds.
_HEADER_REFUSALS = (Refusal.SECRET_MISSING, Refusal.SECRET_WRONG)


class Receiver:
    """The state behind one app: settings, connection cache, writer and purger.

    Nothing here does I/O before the first request (or the app's start-up), so building the app
    while Airflow imports its plugins in a scheduler or worker costs nothing.

    :param settings: The receiver's settings, already checked.
    """

    def __init__(self, settings: ReceiverSettings) -> None:
        self.settings = settings
        self.store_events = settings.store_events
        self.retry_after = str(settings.retry_after_seconds)
        self.connections = ConnectionCache(
            make_lookup(settings.connection_lookup),
            found_ttl=settings.conn_cache_seconds,
            unknown_ttl=settings.unknown_conn_cache_seconds,
        )
        self.refusals = RefusalLog()
        self._freeze_gc = settings.freeze_gc
        self.writer: GroupCommitWriter | ProcessWriter | None = None
        self.purger: Purger | None = None
        self.limit = 0

    def start(self) -> None:
        """Resolve the configuration and start the writer and purge threads (idempotent)."""
        if self.writer is not None:
            return
        # Read here, not in create_app: an invalid [iterable] value then fails the receiver's
        # start-up, not the import of the plugin in every scheduler and worker.
        settings = self.settings.resolve()
        assert settings.max_body_bytes is not None and settings.dedupe_window_seconds is not None
        self.limit = settings.max_body_bytes
        queue_url = settings.queue_url
        # Said at the receiver's start (and the triggerer's), where it helps: not by every
        # console command that opens the queue.
        notice_backend(queue_url if queue_url is not None else config.queue_url())
        busy_timeout = settings.busy_timeout
        writer: GroupCommitWriter | ProcessWriter
        if settings.writer == "process":
            writer = ProcessWriter(
                queue_url,
                busy_timeout=busy_timeout,
                dedupe_window_seconds=settings.dedupe_window_seconds,
                max_batch=settings.max_batch,
                quick_failure_seconds=busy_timeout / 2,
            )
        else:
            writer = GroupCommitWriter(
                lambda: EventQueue(queue_url, busy_timeout=busy_timeout),
                dedupe_window_seconds=settings.dedupe_window_seconds,
                max_batch=settings.max_batch,
                quick_failure_seconds=busy_timeout / 2,
            )
        writer.start()
        if self.store_events and settings.purge_interval_seconds > 0:
            self.purger = Purger(
                writer.queue, retention_days=settings.retention_days, interval=settings.purge_interval_seconds
            )
            self.purger.start()
        self.writer = writer

    async def astop(self) -> None:
        """Stop from the event loop: the writer process first (it belongs to this loop)."""
        if isinstance(self.writer, ProcessWriter):
            await self.writer.aclose()
        await asyncio.to_thread(self.stop)

    def stop(self) -> None:
        """Store what is pending, stop the background threads, report the last refusals."""
        self.refusals.flush()
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
        try:
            self.start()
            assert self.writer is not None
            writer = self.writer
            await asyncio.to_thread(lambda: writer.queue().ping())
        except QueueUnavailableError:
            return error_response(503, "event queue unavailable", {"Retry-After": self.retry_after})
        except Exception as exc:  # a setting the receiver cannot start with
            log.warning("Webhook receiver not ready, answering 503: %s", _described(exc))
            return error_response(503, "event queue unavailable", {"Retry-After": self.retry_after})
        return json_response(200, {"status": "ok"})

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
        if path_id is not None and not ID_DIGITS.fullmatch(path_id):
            return error_response(404, "journey id must be a number")
        return await self._handle(request, "journey", path_id)

    async def _handle(self, request: Request, kind: str, path_id: str | None) -> Response:
        conn_id: str = request.path_params["conn_id"]
        try:
            self.start()
            event = await self._admit(request, kind, conn_id, path_id)
            if not self.store_events:
                return json_response(200, {"status": "discarded", "id": 0})
            assert self.writer is not None
            event_id, stored = await self.writer.append(event)
        except WebhookRejectedError as exc:
            # The connection id is the sender's text: logged with %r, so it cannot forge lines.
            log.debug("Webhook %s for %r refused: %d %s", kind, conn_id, exc.status, exc.detail)
            return error_response(exc.status, exc.detail)
        except ClientGone:
            return error_response(400, "request body incomplete")
        except ConnectionLookupError:
            # The project may well exist: a 404 would make the sender give the delivery up.
            return error_response(503, "connection lookup unavailable", {"Retry-After": self.retry_after})
        except QueueUnavailableError as exc:
            log.warning("Webhook for %s not stored, answering 503: %s", conn_id, exc)
            return error_response(503, "event queue unavailable", {"Retry-After": self.retry_after})
        except Exception as exc:
            # Anything else is a fault of this side (a setting, a bug), never of the delivery:
            # 503 makes the sender retry, where a 4xx would make it drop a valid event. WARNING
            # gets the type (or the provider's own words about a setting), never an exception's
            # text, which may hold payload values.
            log.warning("Webhook %s for %r not stored, answering 503: %s", kind, conn_id, _described(exc))
            log.debug("Webhook %s for %r not stored", kind, conn_id, exc_info=True)
            return error_response(503, "event not stored, retry later", {"Retry-After": self.retry_after})
        log.debug(
            "Webhook %s for %s: event %d (%s)", kind, conn_id, event_id, "stored" if stored else "duplicate"
        )
        return json_response(200, {"status": "stored" if stored else "duplicate", "id": event_id})

    async def _admit(self, request: Request, kind: str, conn_id: str, path_id: str | None) -> NewEvent:
        """Return the delivery's event once every check has passed, or raise the refusal."""
        auth = await self.connections.get(conn_id)
        if self._freeze_gc:
            self._freeze()
        if auth is None:
            raise WebhookRejectedError(404, "unknown connection")
        refusal = auth.refusal(request.headers.get(auth.header_lower))
        if refusal is not None:
            # A wrong secret would otherwise fail silently: Iterable retries, the sensor waits.
            peer = request.client.host if request.client is not None else None
            self.refusals.report(
                conn_id,
                401,
                f"{refusal.value} {auth.header}" if refusal in _HEADER_REFUSALS else refusal.value,
                sender_address(peer, request.headers.get("x-forwarded-for")),
            )
            raise WebhookRejectedError(401, refusal.detail)
        payload, query = await read_payload(request, kind, limit=self.limit)
        return classify(conn_id=conn_id, kind=kind, payload=payload, query=query, path_workflow_id=path_id)


def _described(exc: Exception) -> str:
    if isinstance(exc, IterableConfigError):
        return str(exc)  # the provider's own words about a setting, naming it
    return f"unexpected {type(exc).__name__}"
