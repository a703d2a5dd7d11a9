"""The simulator's HTTP server: reads each request, records it, applies scripted faults, checks
the API key and the rate limit, routes it to its handler, and writes the answer.

Answers go out before the webhooks they cause are delivered (:mod:`._webhooks`), as Iterable
answers first and fires its webhooks after.
"""

from __future__ import annotations

import contextlib
import hmac
import html
import json
import logging
import socket
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_iterable.testing._answers import Answer, ApiError, Call, envelope
from airflow_provider_iterable.testing._faults import fault_body
from airflow_provider_iterable.testing._handlers import BODY_LIMITS, HANDLERS, dispatch
from airflow_provider_iterable.testing._recording import RecordedRequest
from airflow_provider_iterable.testing._routes import Router

if TYPE_CHECKING:
    from airflow_provider_iterable.testing.simulator import IterableSimulator

log = logging.getLogger(__name__)

_ROUTER = Router(HANDLERS)

#: Bodies larger than this are refused with 413 before they are read, to bound memory.
MAX_BODY_BYTES = 64 * 1024 * 1024

_NOT_FOUND_PAGE = (
    b"<!DOCTYPE html><html><head><title>Action not found</title></head>"
    b"<body><h1>Action not found</h1><p>For request '%s'</p></body></html>"
)


class Server(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server answering for one simulator; tracks its open connections."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], sim: IterableSimulator) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.sim = sim
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.accepted = 0
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanishes mid-request is normal for a test server: no traceback on stderr.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _BadRequest(Exception):
    """The request cannot be read (bad framing); answered 400 and the connection closed."""


class _BodyTooLarge(_BadRequest):
    """The body is larger than :data:`MAX_BODY_BYTES`; answered 413."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        # Answers go out in one write; without NODELAY a keep-alive client could wait on delayed ACKs.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
            self.server.accepted += 1

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # ----------------------------------------------------------------------------- serving
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _BadRequest("bad chunk size") from None
                if size == 0:
                    # Skip trailers up to the blank line that ends the body.
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BodyTooLarge("body too large")
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise _BadRequest("body shorter than its chunk size")
                chunks.append(chunk)
                self.rfile.readline(65537)
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        try:
            length = int(raw_length)
        except ValueError:
            raise _BadRequest("bad Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise _BodyTooLarge("body too large")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise _BadRequest("body shorter than Content-Length")
        return body

    def _serve(self) -> None:
        sim = self.server.sim
        try:
            split = urlsplit(self.path)
            body = self._read_body()
        except (_BadRequest, ValueError) as exc:
            # The stream position is unknown now: answer and close the connection.
            self.close_connection = True
            status = 413 if isinstance(exc, _BodyTooLarge) else 400
            self._send(status, envelope(f"Malformed request: {exc}", "BadParams"), close=True)
            return
        matched = _ROUTER.match(self.command, split.path)
        endpoint, params = matched if matched else (f"{self.command} {split.path}", {})
        record = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            endpoint=endpoint,
        )
        sim._requests.append(record)
        extra_headers: dict[str, str] = {}
        fault = sim._faults.take(endpoint)
        if fault is not None:
            if fault.delay and sim._stopping.wait(fault.delay):
                self._drop(record)
                return
            if fault.drop:
                self._drop(record)
                return
            if fault.status is not None:
                raw = fault.body if fault.body is not None else fault_body(fault.status, endpoint)
                self._send_raw(fault.status, raw, "application/json", fault.headers, record=record)
                return
            extra_headers = fault.headers
        try:
            answer = self._answer(sim, endpoint, matched is not None, params, record)
        except Exception:
            log.exception("simulator failed to answer %s", endpoint)
            answer = Answer(500, envelope("Internal error, try again later", "GenericError"))
        if answer.status == 404 and matched is None:
            page = _NOT_FOUND_PAGE % html.escape(f"{self.command} {split.path}").encode("utf-8", "replace")
            self._send_raw(404, page, "text/html; charset=utf-8", extra_headers, record=record)
            return
        # Queued before the answer goes out (so wait_for_webhooks() sees them as pending), but
        # delivered only after it, as Iterable fires webhooks after it answered.
        target = answer.webhook_url or sim.webhook_url
        answered = threading.Event() if answer.webhooks and target else None
        for webhook in answer.webhooks if answered is not None else ():
            sim._webhooks.submit(webhook, answered, url=answer.webhook_url, headers=answer.webhook_headers)
        self._send(answer.status, answer.body, answer.content_type, extra_headers, record=record)
        if answered is not None:
            answered.set()

    def _answer(
        self,
        sim: IterableSimulator,
        endpoint: str,
        known: bool,
        params: dict[str, str],
        record: RecordedRequest,
    ) -> Answer:
        if not known:
            return Answer(404, None)
        key = self.headers.get("Api-Key", "")
        if not hmac.compare_digest(key.encode("utf-8", "replace"), sim.api_key.encode()):
            return Answer(401, envelope("Invalid API key", "BadApiKey"))
        if not sim._limiter.allow(endpoint):
            path = endpoint.split(" ", 1)[1]
            return Answer(429, envelope(f"Exceeded rate limit for endpoint: {path}", "RateLimitExceeded"))
        parsed: Any = None
        if endpoint.startswith("POST "):
            limit = BODY_LIMITS.get(endpoint)
            if limit is not None and len(record.body) > limit:
                return Answer(413, envelope(f"Request body exceeds {limit} bytes", "BatchTooLarge"))
            # Parsed here, not shared with the record: the project may keep the objects it gets.
            try:
                parsed = json.loads(record.body, parse_constant=_reject_constant)
            except (ValueError, RecursionError) as exc:
                msg = f"Could not parse the request body as JSON: {exc}" if record.body else "Empty body"
                return Answer(400, envelope(msg, "BadJsonBody"))
        try:
            return dispatch(sim._project, endpoint, Call(params, record.query, parsed))
        except ApiError as exc:
            return exc.answer()

    def _drop(self, record: RecordedRequest) -> None:
        record.status = 0
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(
        self,
        status: int,
        body: Any,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        close: bool = False,
        record: RecordedRequest | None = None,
    ) -> None:
        if content_type == "application/json":
            data = json.dumps(body, separators=(",", ":")).encode()
        else:
            data = str(body).encode()
            content_type = f"{content_type}; charset=utf-8"
        self._send_raw(status, data, content_type, headers or {}, close=close, record=record)

    def _send_raw(
        self,
        status: int,
        data: bytes,
        content_type: str,
        headers: Mapping[str, str],
        close: bool = False,
        record: RecordedRequest | None = None,
    ) -> None:
        reason = self.responses.get(status, ("",))[0]
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(data)}",
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if close or self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        # Recorded before the write: a client that got the answer must find it in the record.
        if record is not None:
            record.status = status
        # One write for head and body: no small-packet stalls on keep-alive connections.
        try:
            self.wfile.write(head + data)
        except OSError:
            self.close_connection = True
            if record is not None:
                record.status = 0


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's parser accepts them, Iterable's does not.
    raise ValueError(f"{name} is not valid JSON")
