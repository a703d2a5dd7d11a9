"""Scripted faults of the simulator: the next requests to an endpoint fail the way Iterable can."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_iterable._values import is_number, is_whole_number, whole_number
from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.testing._answers import envelope

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
class Fault:
    """One scripted failure; see :meth:`IterableSimulator.add_fault` for what each field does."""

    status: int | None
    body: bytes | None
    headers: dict[str, str]
    delay: float
    drop: bool
    remaining: int


def fault_body(status: int, endpoint: str) -> bytes:
    """Return the body Iterable answers ``status`` with on ``endpoint``."""
    code, msg = _FAULT_BODIES.get(status, ("GenericError" if status >= 500 else "BadParams", "Error"))
    if status == 429:
        msg = f"Exceeded rate limit for endpoint: {endpoint.split(' ', 1)[-1]}"
    return json.dumps(envelope(msg, code)).encode()


class FaultScript:
    """Thread-safe queues of scripted faults, one per endpoint key."""

    def __init__(self) -> None:
        self._faults: dict[str, deque[Fault]] = {}
        self._lock = threading.Lock()

    def add(
        self,
        endpoint: str,
        *,
        status: int | None,
        body: str | bytes | dict[str, Any] | None,
        headers: Mapping[str, str] | None,
        delay: float,
        drop: bool,
        times: int,
    ) -> None:
        """Queue a fault for the next ``times`` requests to ``endpoint`` (arguments as in ``add_fault``)."""
        if not isinstance(endpoint, str) or " " not in endpoint:
            raise IterableConfigError(f"endpoint must look like 'POST /api/users/update', got {endpoint!r}")
        if status is not None and not is_whole_number(status, minimum=100, maximum=599):
            raise IterableConfigError(f"status must be an HTTP status code, got {status!r}")
        if body is not None and status is None:
            raise IterableConfigError("body needs a status")
        if body is not None and not isinstance(body, str | bytes | dict):
            raise IterableConfigError(f"body must be text, bytes or a dict, got {type(body).__name__}")
        if not is_number(delay, minimum=0):
            raise IterableConfigError(f"delay must be a number of seconds >= 0, got {delay!r}")
        whole_number(times, "times", minimum=1)
        raw: bytes | None
        if isinstance(body, dict):
            raw = json.dumps(body).encode()
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = body
        fault = Fault(status, raw, dict(headers or {}), delay, drop, times)
        with self._lock:
            self._faults.setdefault(endpoint, deque()).append(fault)

    def clear(self) -> None:
        """Remove every fault not yet used."""
        with self._lock:
            self._faults.clear()

    def take(self, endpoint: str) -> Fault | None:
        """Return the fault the next request to ``endpoint`` gets (using one of its ``times``), or None."""
        if not self._faults:
            return None
        with self._lock:
            pending = self._faults.get(endpoint)
            if not pending:
                return None
            fault = pending[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                pending.popleft()
            return fault
