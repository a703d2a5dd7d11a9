"""Recording of the simulator: every request as it arrived, kept for a test's assertions."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


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


class RequestLog:
    """Thread-safe log of recorded requests, oldest first.

    :param max_requests: keep only the most recent N requests (None: keep all).
    """

    def __init__(self, max_requests: int | None = None) -> None:
        self._requests: deque[RecordedRequest] = deque(maxlen=max_requests)
        self._lock = threading.Lock()

    def append(self, record: RecordedRequest) -> None:
        """Record one request."""
        with self._lock:
            self._requests.append(record)

    def all(self) -> list[RecordedRequest]:
        """Return every recorded request (a copy of the list)."""
        with self._lock:
            return list(self._requests)

    def for_endpoint(self, endpoint: str) -> list[RecordedRequest]:
        """Return the recorded requests to ``endpoint``."""
        with self._lock:
            return [r for r in self._requests if r.endpoint == endpoint]

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._requests.clear()
