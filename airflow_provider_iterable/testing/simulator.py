"""A stateful Iterable look-alike served over HTTP on loopback, for tests and demos.

See :mod:`airflow_provider_iterable.testing` for a guide with examples.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hmac
import html
import json
import logging
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_provider_iterable.testing._api import (
    BULK_UPDATE_MAX_BYTES,
    HANDLERS,
    Answer,
    ApiError,
    Call,
    Project,
    build_webhook,
    envelope,
    iterable_time,
)
from airflow_provider_iterable.testing._rate_limit import RateLimiter
from airflow_provider_iterable.testing._webhooks import WebhookSender

log = logging.getLogger(__name__)

#: The API key the simulator accepts unless told otherwise (32 lower-case hex digits, like Iterable's).
DEFAULT_API_KEY = "0123456789abcdef0123456789abcdef"

#: Bodies larger than this are refused with 413 before they are read, to bound memory.
MAX_BODY_BYTES = 64 * 1024 * 1024

_NOT_FOUND_PAGE = (
    b"<!DOCTYPE html><html><head><title>Action not found</title></head>"
    b"<body><h1>Action not found</h1><p>For request '%s'</p></body></html>"
)

# Default answer bodies of scripted faults, by status: what Iterable sends for each.
_FAULT_BODIES: dict[int, tuple[str, str]] = {
    400: ("BadParams", "Invalid parameters"),
    401: ("BadApiKey", "Invalid API key"),
    403: ("Forbidden", "This API key is not allowed to call this endpoint"),
    404: ("NotFound", "Not found"),
    409: ("ForgottenUserError", "Conflict"),
    429: ("RateLimitExceeded", "Exceeded rate limit for endpoint"),
    500: ("GenericError", "Internal error, try again later"),
    502: ("GenericError", "Bad gateway, try again later"),
    503: ("GenericError", "Request timeout. Try again later."),
    504: ("GenericError", "Gateway timeout, try again later"),
}


@dataclass
class RecordedRequest:
    """One request the simulator received, as it arrived.

    :param method: HTTP method, upper case.
    :param path: the request path as sent (still percent-encoded).
    :param query: query parameters, each name mapped to all its values.
    :param headers: request headers with lower-case names.
    :param body: the raw body; :attr:`json` is the body parsed as JSON (None when empty or not JSON).
    :param endpoint: ``"METHOD /api/path-template"`` (the raw path for an unknown route).
    :param status: the HTTP status answered; 0 while unanswered or when the connection was dropped.
    :param received_at: :func:`time.monotonic` when the body had been read.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    endpoint: str
    status: int = 0
    received_at: float = field(default_factory=time.monotonic)

    @functools.cached_property
    def json(self) -> Any:
        """The body parsed as JSON (a fresh object, not the one the simulator stored); None if not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class _Fault:
    status: int | None
    body: bytes | None
    headers: dict[str, str]
    delay: float
    drop: bool
    remaining: int


class _Route:
    __slots__ = ("method", "names", "pattern", "template")

    def __init__(self, endpoint: str) -> None:
        self.method, self.template = endpoint.split(" ", 1)
        self.names = re.findall(r"{(\w+)}", self.template)
        # A parameter is one raw path segment: an e-mail with "/" arrives as %2F and still matches.
        self.pattern = re.compile("^" + re.sub(r"\\{\w+\\}", "([^/]+)", re.escape(self.template)) + "$")


# Literal templates first, so /api/users/getByEmail never matches /api/users/{email}.
_ROUTES: list[_Route] = sorted(
    (_Route(endpoint) for endpoint in HANDLERS), key=lambda route: ("{" in route.template, route.template)
)
_LITERAL_ROUTES: dict[tuple[str, str], _Route] = {
    (route.method, route.template): route for route in _ROUTES if "{" not in route.template
}


def match_route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """Return the endpoint key and path parameters (decoded) for a request, or None if unknown."""
    route = _LITERAL_ROUTES.get((method, path))
    if route is not None:
        return f"{route.method} {route.template}", {}
    for route in _ROUTES:
        if route.method != method:
            continue
        found = route.pattern.match(path)
        if found:
            params = {name: unquote(value) for name, value in zip(route.names, found.groups(), strict=True)}
            return f"{route.method} {route.template}", params
    return None


class _Server(ThreadingHTTPServer):
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
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

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
                    raise _BadRequest("body too large")
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
            raise _BadRequest("body too large")
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
            status = 413 if "too large" in str(exc) else 400
            self._send(status, envelope(f"Malformed request: {exc}", "BadParams"), close=True)
            return
        matched = match_route(self.command, split.path)
        endpoint, params = matched if matched else (f"{self.command} {split.path}", {})
        record = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            endpoint=endpoint,
        )
        sim._record(record)
        extra_headers: dict[str, str] = {}
        fault = sim._take_fault(endpoint)
        if fault is not None:
            if fault.delay and sim._stopping.wait(fault.delay):
                self._drop(record)
                return
            if fault.drop:
                self._drop(record)
                return
            if fault.status is not None:
                fault_body = fault.body if fault.body is not None else _fault_body(fault.status, endpoint)
                self._send_raw(fault.status, fault_body, "application/json", fault.headers, record=record)
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
            if endpoint == "POST /api/users/bulkUpdate" and len(record.body) > BULK_UPDATE_MAX_BYTES:
                return Answer(
                    413,
                    envelope(f"Request body exceeds {BULK_UPDATE_MAX_BYTES} bytes", "BatchTooLarge"),
                )
            # Parsed here, not shared with the record: the project may keep the objects it gets.
            try:
                parsed = json.loads(record.body, parse_constant=_reject_constant)
            except (ValueError, RecursionError) as exc:
                msg = f"Could not parse the request body as JSON: {exc}" if record.body else "Empty body"
                return Answer(400, envelope(msg, "BadJsonBody"))
        try:
            return sim._project.handle(endpoint, Call(params, record.query, parsed))
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


def _fault_body(status: int, endpoint: str) -> bytes:
    code, msg = _FAULT_BODIES.get(status, ("GenericError" if status >= 500 else "BadParams", "Error"))
    if status == 429:
        msg = f"Exceeded rate limit for endpoint: {endpoint.split(' ', 1)[-1]}"
    return json.dumps(envelope(msg, code)).encode()


class IterableSimulator:
    """A local, stateful Iterable API served over HTTP on loopback.

    :param api_key: the only API key accepted (header ``Api-Key``); others get 401 ``BadApiKey``.
    :param host: address to bind, loopback by default.
    :param port: port to bind; 0 (the default) lets the OS choose one, see :attr:`url`.
    :param rate_limits: per-second limits by endpoint key (``"POST /api/users/bulkUpdate"``)
        replacing Iterable's documented defaults for those endpoints.
    :param rate_limit_scale: multiplies every limit given at construction (defaults and
        ``rate_limits``), e.g. 1000 to push 100,000 users through in seconds.
    :param enforce_rate_limits: False answers every request without rate limiting.
    :param webhook_url: where system webhooks (``emailSend``, ``smsSend``, ...) are POSTed.
    :param webhook_headers: headers sent with every webhook, e.g. ``{"Authorization": "Bearer s3cret"}``.
    :param max_recorded_requests: keep only the most recent N requests (None: keep all).
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limits: Mapping[str, float] | None = None,
        rate_limit_scale: float = 1.0,
        enforce_rate_limits: bool = True,
        webhook_url: str | None = None,
        webhook_headers: Mapping[str, str] | None = None,
        max_recorded_requests: int | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port}")
        if max_recorded_requests is not None and max_recorded_requests < 0:
            raise ValueError(f"max_recorded_requests must be >= 0, got {max_recorded_requests}")
        self.api_key = api_key
        self.host = host
        self.port = port
        #: Where system webhooks go; may be set or changed while the simulator runs.
        self.webhook_url = webhook_url
        #: Headers sent with every webhook; may be changed while the simulator runs.
        self.webhook_headers: dict[str, str] = dict(webhook_headers or {})
        self._limiter = RateLimiter(rate_limits, scale=rate_limit_scale, enforce=enforce_rate_limits)
        self._project = Project()
        self._requests: deque[RecordedRequest] = deque(maxlen=max_recorded_requests)
        self._requests_lock = threading.Lock()
        self._faults: dict[str, deque[_Fault]] = {}
        self._faults_lock = threading.Lock()
        self._deliveries: list[tuple[int, dict[str, Any]]] = []
        self._deliveries_lock = threading.Lock()
        self._stopping = threading.Event()
        self._webhooks = WebhookSender(self._webhook_target, self._delivered, self._stopping)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------- lifecycle
    def start(self) -> IterableSimulator:
        """Bind the port and serve in a background thread; return self."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"iterable-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection and free the port. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with server.connections_lock:
            connections = list(server.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._webhooks.close()

    def __enter__(self) -> IterableSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the simulator is serving."""
        return self._server is not None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (the real port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections the simulator accepted since it started (keep-alive check)."""
        server = self._server
        return 0 if server is None else server.accepted

    def connection_json(self, **extra: Any) -> str:
        """Return an Airflow connection, as JSON for ``AIRFLOW_CONN_<ID>``, pointing at this simulator.

        :param extra: the connection's extra fields, e.g. ``rate_limits={...}`` or ``timeout=5``.
        """
        if self.port == 0:
            raise RuntimeError("start the simulator first: its port is not known yet")
        conn = {"conn_type": "iterable", "host": self.url, "password": self.api_key, "extra": extra}
        return json.dumps(conn)

    # ---------------------------------------------------------------------------- recording
    def _record(self, record: RecordedRequest) -> None:
        with self._requests_lock:
            self._requests.append(record)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first (a copy of the list)."""
        with self._requests_lock:
            return list(self._requests)

    def requests_for(self, endpoint: str) -> list[RecordedRequest]:
        """Return the requests to one endpoint, e.g. ``requests_for("POST /api/users/update")``.

        :param endpoint: ``"METHOD /api/path-template"`` as in Iterable's docs
            (``"GET /api/users/{email}"``), or ``"METHOD /raw/path"`` for an unknown route.
        """
        with self._requests_lock:
            return [r for r in self._requests if r.endpoint == endpoint]

    def clear_requests(self) -> None:
        """Forget every recorded request."""
        with self._requests_lock:
            self._requests.clear()

    # ------------------------------------------------------------------------------- faults
    def add_fault(
        self,
        endpoint: str,
        *,
        status: int | None = None,
        body: str | bytes | dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        drop: bool = False,
        times: int = 1,
    ) -> None:
        """Script a failure for the next ``times`` requests to ``endpoint``.

        Each such request is read and recorded first; then the simulator waits ``delay`` seconds
        (a delay longer than the client's read timeout is a read timeout after Iterable got the
        request), then closes the connection without answering if ``drop``, else answers
        ``status`` with ``body`` (default: Iterable's error body for that status) and ``headers``
        (e.g. ``{"Retry-After": "2"}``). With no ``status`` and no ``drop``, the request is
        processed normally after the delay, and ``headers`` are added to its answer.
        Faults for one endpoint queue up in the order they were added; a fault applies before
        the key check and the rate limit.

        :param endpoint: ``"METHOD /api/path-template"``, e.g. ``"POST /api/users/bulkUpdate"``.
        :param status: the HTTP status to answer; ``None`` processes the request normally.
        :param body: the answer's body (a dict is sent as JSON); needs ``status``.
        :param headers: headers added to the answer.
        :param delay: seconds to wait after reading the request, before answering.
        :param drop: close the connection without answering.
        :param times: how many of the next requests to the endpoint get this fault.
        """
        if " " not in endpoint:
            raise ValueError(f"endpoint must look like 'POST /api/users/update', got {endpoint!r}")
        if status is not None and not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {status!r}")
        if body is not None and status is None:
            raise ValueError("body needs a status")
        if delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay!r}")
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times!r}")
        raw: bytes | None
        if isinstance(body, dict):
            raw = json.dumps(body).encode()
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = body
        fault = _Fault(status, raw, dict(headers or {}), delay, drop, times)
        with self._faults_lock:
            self._faults.setdefault(endpoint, deque()).append(fault)

    def clear_faults(self) -> None:
        """Remove every scripted fault not yet used."""
        with self._faults_lock:
            self._faults.clear()

    def _take_fault(self, endpoint: str) -> _Fault | None:
        if not self._faults:
            return None
        with self._faults_lock:
            pending = self._faults.get(endpoint)
            if not pending:
                return None
            fault = pending[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                pending.popleft()
            return fault

    # -------------------------------------------------------------------------- rate limits
    @property
    def enforce_rate_limits(self) -> bool:
        """Whether requests beyond a limit get 429; may be switched while running."""
        return self._limiter.enforce

    @enforce_rate_limits.setter
    def enforce_rate_limits(self, value: bool) -> None:
        self._limiter.enforce = value

    def rate_limit(self, endpoint: str) -> float | None:
        """Return the effective limit of ``endpoint`` in requests per second (None: unlimited).

        :param endpoint: ``"METHOD /api/path-template"``.
        """
        return self._limiter.limit(endpoint)

    def set_rate_limit(self, endpoint: str, per_second: float | None) -> None:
        """Set the limit of one endpoint to exactly ``per_second`` (not scaled); None removes it.

        :param endpoint: ``"METHOD /api/path-template"``.
        :param per_second: requests per second, or ``None`` for no limit.
        """
        self._limiter.set_limit(endpoint, per_second)

    def rate_limited_count(self, endpoint: str | None = None) -> int:
        """Return how many requests got 429 from a rate limit (scripted faults not counted).

        :param endpoint: count only this endpoint's (``"METHOD /api/path-template"``); default all.
        """
        return self._limiter.limited_count(endpoint)

    # -------------------------------------------------------------------------------- state
    def get_user(self, email: str | None = None, user_id: str | None = None) -> dict[str, Any] | None:
        """Return a user as ``GET /api/users/getByEmail`` would (``{"email", "userId", "dataFields"}``).

        :param email: the user's e-mail address; exactly one of ``email`` and ``user_id``.
        :param user_id: the user's userId.
        :return: the user, or ``None`` when there is none.
        """
        if (email is None) == (user_id is None):
            raise ValueError("pass exactly one of email or user_id")
        with self._project.lock:
            user = self._project.find_user(email, user_id)
            return None if user is None else self._project.user_view(user)

    def add_user(
        self,
        *,
        email: str | None = None,
        user_id: str | None = None,
        data_fields: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create or update a user as ``POST /api/users/update`` would, without a request; return it.

        :param email: the user's e-mail address.
        :param user_id: the user's userId.
        :param data_fields: profile fields merged into the user.
        """
        record: dict[str, Any] = {"dataFields": data_fields or {}}
        if email is not None:
            record["email"] = email
        if user_id is not None:
            record["userId"] = user_id
        answer = self._project.handle("POST /api/users/update", Call({}, {}, record))
        if answer.status != 200:
            raise ValueError(f"cannot add user: {answer.body['msg']}")
        user = self.get_user(email=email) if email is not None else self.get_user(user_id=user_id)
        assert user is not None
        return user

    def forget_user(self, *, email: str | None = None, user_id: str | None = None) -> None:
        """GDPR-forget a user: it is deleted, and later writes for it fail with ``ForgottenUserError``.

        :param email: the user's e-mail address.
        :param user_id: the user's userId.
        """
        if email is None and user_id is None:
            raise ValueError("pass email or user_id")
        self._project.forget(email, user_id)

    @property
    def lists(self) -> dict[int, dict[str, Any]]:
        """Lists by id: ``{"id", "name", "description", "createdAt", "listType", "subscribers"}`` (a copy)."""
        with self._project.lock:
            return copy.deepcopy(self._project.lists)

    def add_list(self, name: str, description: str | None = None) -> int:
        """Create a static list as ``POST /api/lists`` would; return its id.

        :param name: the list's name.
        :param description: the list's description.
        """
        return self._project.add_list(name, description)

    def list_members(self, list_id: int) -> set[str]:
        """Return the members of a list: e-mails (userIds for users without an e-mail).

        :param list_id: the list's id.
        """
        with self._project.lock:
            if list_id not in self._project.lists:
                raise KeyError(f"no list with id {list_id}")
            return set(self._project.lists[list_id]["subscribers"])

    @property
    def events(self) -> list[dict[str, Any]]:
        """Tracked events in order, each with its ``id`` (a copy)."""
        with self._project.lock:
            return copy.deepcopy(self._project.events)

    @property
    def sends(self) -> list[dict[str, Any]]:
        """E-mail and SMS sends in order: ``{"medium", "campaignId", "recipientEmail", ...}`` (a copy)."""
        with self._project.lock:
            return copy.deepcopy(self._project.sends)

    @property
    def workflow_triggers(self) -> list[dict[str, Any]]:
        """Journey triggers in order: ``{"workflowId", "email", "userId", "listId", "dataFields"}``."""
        with self._project.lock:
            return copy.deepcopy(self._project.workflow_triggers)

    @property
    def campaigns(self) -> dict[int, dict[str, Any]]:
        """Campaigns by id (a copy); 1001 (Email) and 2001 (SMS) exist from the start."""
        with self._project.lock:
            return copy.deepcopy(self._project.campaigns)

    def add_campaign(self, campaign_id: int, medium: str = "Email", *, name: str | None = None) -> None:
        """Create a campaign that ``email/target`` (medium ``Email``) or ``sms/target`` (``SMS``) accepts.

        :param campaign_id: the campaign's id.
        :param medium: ``"Email"``, ``"SMS"`` or ``"Push"``.
        :param name: the campaign's name (default: derived from the id).
        """
        self._project.add_campaign(campaign_id, medium, name=name)

    def add_workflow(
        self,
        workflow_id: int,
        *,
        name: str | None = None,
        webhook_url: str | None = None,
        webhook_headers: Mapping[str, str] | None = None,
    ) -> None:
        """Create a journey that ``workflows/triggerWorkflow`` accepts (3001 exists from the start).

        :param workflow_id: the journey's id.
        :param name: the journey's name (default: derived from the id).
        :param webhook_headers: headers sent with the Call Webhook tile's requests.
        :param webhook_url: give the journey a Call Webhook tile POSTing here: each user the journey
            is triggered for is sent as ``{"email", "userId", "workflowId", "workflowName",
            "dataFields"}`` (``dataFields``: the trigger's), with ``webhook_headers``.
        """
        self._project.add_workflow(
            workflow_id, name=name, webhook_url=webhook_url, webhook_headers=dict(webhook_headers or {})
        )

    def disallow_event_name(self, event_name: str) -> None:
        """Refuse events of this name, as a project with a restricted event list does.

        :param event_name: the event name to refuse.
        """
        with self._project.lock:
            self._project.disallowed_event_names.add(event_name)

    # ----------------------------------------------------------------------------- webhooks
    def _webhook_target(self) -> tuple[str | None, Mapping[str, str]]:
        return self.webhook_url, dict(self.webhook_headers)

    def _delivered(self, status: int, body: dict[str, Any]) -> None:
        with self._deliveries_lock:
            self._deliveries.append((status, body))

    @property
    def webhook_deliveries(self) -> list[tuple[int, dict[str, Any]]]:
        """Every delivery attempt: (HTTP status from the receiver, or 0 if it failed to connect; body)."""
        with self._deliveries_lock:
            return list(self._deliveries)

    def fire_webhook(
        self,
        event_name: str,
        *,
        email: str | None = None,
        user_id: str | None = None,
        data_fields: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST a system webhook of any type (``emailOpen``, ``emailClick``, ...) to :attr:`webhook_url`.

        The body is shaped like Iterable's: ``{"email", "eventName", "dataFields"}`` (plus ``userId``
        when given); ``dataFields`` gets a ``createdAt`` unless it has one. Delivery happens in the
        background with retries; :meth:`wait_for_webhooks` waits for it.

        :param event_name: Iterable's event name, e.g. ``"emailOpen"``.
        :param email: the user's e-mail address.
        :param user_id: the user's userId (sent top-level).
        :param data_fields: the event's ``dataFields``.
        :return: the body queued for delivery.
        """
        if not event_name:
            raise ValueError("event_name must not be empty")
        if not self.webhook_url:
            raise RuntimeError("set webhook_url first: there is nowhere to send the webhook")
        fields = {"createdAt": iterable_time(), **copy.deepcopy(dict(data_fields or {}))}
        if email is not None:
            fields.setdefault("email", email)
        body = build_webhook(event_name, email=email, user_id=user_id, data_fields=fields)
        self._webhooks.submit(body)
        return body

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until every webhook fired so far was delivered or given up; False on timeout.

        :param timeout: most seconds to wait.
        """
        return self._webhooks.join(timeout)
