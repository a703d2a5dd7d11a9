"""A stateful Iterable look-alike served over HTTP on loopback, for tests and demos.

See :mod:`airflow_provider_iterable.testing` for a guide with examples. This module holds the
public :class:`IterableSimulator`; the parts it is built from are the project state
(``_project``, read and seeded through ``_state``), the handlers by area (``_handlers``), the
HTTP server (``_server``, routing in ``_routes``), scripted faults (``_faults``), the request log
(``_recording``), rate limits (``_rate_limit``) and webhook delivery (``_webhooks``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from airflow_provider_iterable._values import whole_number
from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.testing._answers import iterable_time
from airflow_provider_iterable.testing._faults import FaultScript
from airflow_provider_iterable.testing._project import Project
from airflow_provider_iterable.testing._rate_limit import RateLimiter
from airflow_provider_iterable.testing._recording import RecordedRequest, RequestLog
from airflow_provider_iterable.testing._server import Server
from airflow_provider_iterable.testing._state import ProjectState
from airflow_provider_iterable.testing._webhooks import WebhookSender, build_webhook, receiver_extra

__all__ = ["DEFAULT_API_KEY", "IterableSimulator", "RecordedRequest"]


#: The API key the simulator accepts unless told otherwise (32 lower-case hex digits, like Iterable's).
DEFAULT_API_KEY = "0123456789abcdef0123456789abcdef"


class IterableSimulator(ProjectState):
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
    :param webhook_headers: headers sent with every webhook, e.g. ``{"Authorization": "Basic s3cret"}``.
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
        if not isinstance(api_key, str) or not api_key:
            raise IterableConfigError("api_key must be a non-empty string")
        whole_number(port, "port", minimum=0, maximum=65535)
        if max_recorded_requests is not None:
            whole_number(max_recorded_requests, "max_recorded_requests", minimum=0)
        self.api_key = api_key
        self.host = host
        self.port = port
        #: Where system webhooks go; may be set or changed while the simulator runs.
        self.webhook_url = webhook_url
        #: Headers sent with every webhook; may be changed while the simulator runs.
        self.webhook_headers: dict[str, str] = dict(webhook_headers or {})
        self._limiter = RateLimiter(rate_limits, scale=rate_limit_scale, enforce=enforce_rate_limits)
        self._project = Project()
        self._requests = RequestLog(max_recorded_requests)
        self._faults = FaultScript()
        self._deliveries: list[tuple[int, dict[str, Any]]] = []
        self._deliveries_lock = threading.Lock()
        self._stopping = threading.Event()
        self._webhooks = WebhookSender(self._webhook_target, self._delivered, self._stopping)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------- lifecycle
    def start(self) -> IterableSimulator:
        """Bind the port and serve in a background thread; return self."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._stopping.clear()
        self._server = Server((self.host, self.port), self)
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

    def webhook_connection_extra(self) -> dict[str, Any]:
        """Return the connection extras with which the provider's receiver accepts this simulator's webhooks.

        The receiver checks each delivery against the connection named in its URL: pass these to
        :meth:`connection_json` for that connection (``iterable_default`` in
        ``/webhooks/iterable_default/system``). The secret is taken from the ``Authorization``
        header of :attr:`webhook_headers` (else from the first header, which then becomes
        ``webhook_secret_header``) without its ``Basic``/``Bearer``/``OAuth2`` word. Without any
        header this is ``{"webhook_auth": "none"}``; without a :attr:`webhook_url`, ``{}``.
        """
        return receiver_extra(self.webhook_url, self.webhook_headers)

    # ---------------------------------------------------------------------------- recording
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first (a copy of the list)."""
        return self._requests.all()

    def requests_for(self, endpoint: str) -> list[RecordedRequest]:
        """Return the requests to one endpoint, e.g. ``requests_for("POST /api/users/update")``.

        :param endpoint: ``"METHOD /api/path-template"`` as in Iterable's docs
            (``"GET /api/users/{email}"``), or ``"METHOD /raw/path"`` for an unknown route.
        """
        return self._requests.for_endpoint(endpoint)

    def clear_requests(self) -> None:
        """Forget every recorded request."""
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
        self._faults.add(
            endpoint, status=status, body=body, headers=headers, delay=delay, drop=drop, times=times
        )

    def clear_faults(self) -> None:
        """Remove every scripted fault not yet used."""
        self._faults.clear()

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
        if not isinstance(event_name, str) or not event_name:
            raise IterableConfigError(f"event_name must be a non-empty string, got {event_name!r}")
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
