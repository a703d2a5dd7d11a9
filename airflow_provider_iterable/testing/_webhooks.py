"""System webhooks of the simulator: their body as Iterable shapes it, and their delivery to a URL."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

log = logging.getLogger(__name__)


def build_webhook(
    event_name: str, *, email: str | None, user_id: str | None, data_fields: dict[str, Any]
) -> dict[str, Any]:
    """Shape a system-webhook body as Iterable sends it."""
    body: dict[str, Any] = {"email": email, "eventName": event_name, "dataFields": data_fields}
    if user_id is not None:
        body["userId"] = user_id
    return body


def redact_url(url: str) -> str:
    """Return ``url`` without user info, query or fragment, which may carry secrets.

    :param url: the URL a webhook is delivered to.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<a URL that does not parse>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def describe(body: Mapping[str, Any]) -> str:
    """Name a webhook for a log line by its event, never by the user it is about."""
    event_name = body.get("eventName")
    if isinstance(event_name, str):
        return event_name
    return f"journey webhook of workflow {body.get('workflowId')}"


def receiver_extra(url: str | None, headers: Mapping[str, str]) -> dict[str, Any]:
    """Return the connection extras with which the webhook receiver accepts deliveries sent with ``headers``.

    The secret is the value of the ``Authorization`` header (else of the first header) without
    the scheme word before it that the receiver accepts (``Basic``, ``OAuth2``, ``Bearer``).

    :param url: where the webhooks go; ``None`` (no webhooks) needs no extras.
    :param headers: the headers sent with every webhook.
    """
    if not url:
        return {}
    if not headers:
        # Nothing is sent that a secret could be compared with: only an open connection accepts it.
        return {"webhook_auth": "none"}
    from airflow_provider_iterable.webhooks.auth import DEFAULT_SECRET_HEADER, SCHEMES

    name = next((n for n in headers if n.lower() == DEFAULT_SECRET_HEADER.lower()), next(iter(headers)))
    value = headers[name].strip()
    scheme, _, rest = value.partition(" ")
    if rest.strip() and scheme.lower() in SCHEMES:
        value = rest.strip()
    extra: dict[str, Any] = {"webhook_secrets": [value]}
    if name.lower() != DEFAULT_SECRET_HEADER.lower():
        extra["webhook_secret_header"] = name
    return extra


@dataclass
class _Item:
    body: dict[str, Any]
    after: threading.Event | None
    url: str | None
    headers: dict[str, str]


#: Seconds to wait before each retry of a failed delivery (so at most 1 + len() attempts).
RETRY_BACKOFF: tuple[float, ...] = (0.1, 0.3, 0.9)
#: Connect/read timeout of one delivery attempt, in seconds.
DELIVERY_TIMEOUT = 5.0

# What a refusal by the provider's receiver means, by status.
_HINTS: dict[int, str] = {
    401: "; the receiver refused the secret: the connection's webhook_secrets must hold the one sent",
    404: "; the receiver knows no such connection id or path",
}


class WebhookSender:
    """Deliver webhook bodies from one background thread, in the order they were queued.

    A delivery that fails (a non-2xx answer or a connection error) is retried after each delay of
    :data:`RETRY_BACKOFF`, as Iterable retries failed deliveries. Every attempt is reported to
    ``on_attempt`` as ``(HTTP status or 0, body)``.

    :param target: returns the current ``(url, headers)``; read at each attempt, so a URL set after
        the simulator started (a receiver started later) is honoured.
    :param on_attempt: called after every attempt.
    :param stop_event: set when the simulator stops; pending retries are abandoned then.
    """

    def __init__(
        self,
        target: Callable[[], tuple[str | None, Mapping[str, str]]],
        on_attempt: Callable[[int, dict[str, Any]], None],
        stop_event: threading.Event,
    ) -> None:
        self._target = target
        self._on_attempt = on_attempt
        self._stop = stop_event
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(
        self,
        body: dict[str, Any],
        after: threading.Event | None = None,
        *,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Queue ``body`` for delivery; starts the delivery thread on first use.

        :param after: delivery waits until this is set (the API answer that caused the webhook
            has gone out), so a webhook never overtakes its answer while :meth:`join` counts it
            as pending from the start.
        :param url: deliver here instead of the simulator's system-webhook URL (journey webhooks).
        :param headers: headers for ``url``.
        """
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                # Each thread gets its own queue: one told to stop never swallows later bodies.
                self._queue = queue.Queue()
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="iterable-sim-webhooks", daemon=True
                )
                self._thread.start()
            self._queue.put(_Item(body, after, url, dict(headers or {})))

    def join(self, timeout: float) -> bool:
        """Wait until every queued body was delivered or given up; return False on timeout."""
        pending = self._queue
        deadline = time.monotonic() + timeout
        with pending.all_tasks_done:
            while pending.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                pending.all_tasks_done.wait(remaining)
        return True

    def close(self) -> None:
        """Stop the delivery thread; a delivery in flight is given a second to finish."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout=1.0)

    def _run(self, pending: queue.Queue[_Item | None]) -> None:
        session = requests.Session()
        try:
            while True:
                item = pending.get()
                try:
                    if item is None:
                        return
                    if item.after is not None:
                        item.after.wait(DELIVERY_TIMEOUT)
                    self._deliver(session, item)
                finally:
                    pending.task_done()
        finally:
            session.close()

    def _deliver(self, session: requests.Session, item: _Item) -> None:
        body = item.body
        data = json.dumps(body).encode()
        attempts = len(RETRY_BACKOFF) + 1
        for attempt in range(attempts):
            if attempt and self._stop.wait(RETRY_BACKOFF[attempt - 1]):
                return
            url, headers = (item.url, item.headers) if item.url else self._target()
            if not url:
                return
            status = 0
            try:
                answer = session.post(
                    url,
                    data=data,
                    headers={**headers, "Content-Type": "application/json"},
                    timeout=DELIVERY_TIMEOUT,
                )
                status = answer.status_code
                reason = f"HTTP {status}"
            except requests.RequestException as exc:
                reason = f"no answer ({type(exc).__name__})"
                log.debug("webhook delivery to %s failed: %s", redact_url(url), exc)
            self._on_attempt(status, body)
            if 200 <= status < 300:
                return
            # A refused delivery is otherwise silent: the receiver stores nothing, a sensor waits.
            log.warning(
                "webhook %s to %s failed: %s (attempt %d of %d, %s)%s",
                describe(body),
                redact_url(url),
                reason,
                attempt + 1,
                attempts,
                "giving up" if attempt + 1 == attempts else "retrying",
                _HINTS.get(status, ""),
            )
