"""Client-side pacing of calls to Iterable, one token bucket per endpoint.

Iterable enforces its limits as leaky buckets per project and answers 429 when one overflows; it
sends no rate-limit headers on success, so pacing on the client side is the only way to avoid
429s. Each endpoint gets a bucket with a burst of 1: calls are spaced evenly at ``1 / rate``
seconds, which a leaky bucket of the same rate always accepts.

Limiters are shared per ``(conn_id, base_url)`` within a process, so every hook (and every
thread) that uses one connection draws from the same buckets.
"""

from __future__ import annotations

import difflib
import math
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from airflow_provider_iterable._values import is_number, json_object
from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.rate_limits import DEFAULT_RATE_LIMITS, UNDOCUMENTED_RATE_LIMIT

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "UNDOCUMENTED_RATE_LIMIT",
    "EndpointRateLimiter",
    "limiter_for",
    "parse_rate_limits",
    "rate_limit_keys",
]

_KEY_PATTERN = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD) (/\S*)$")
_DISABLED_WORDS = frozenset({"", "none", "null", "off", "unlimited"})


def parse_rate_limits(raw: Any, *, conn_id: str, endpoints: Collection[str]) -> dict[str, float | None]:
    """Validate the connection extra ``rate_limits`` and return it normalised.

    A key must name an endpoint the hook calls or one :data:`DEFAULT_RATE_LIMITS` knows a limit
    for: a misspelt key would otherwise be accepted and do nothing. The method is read
    case-insensitively (``post`` can only mean ``POST``); the path is compared exactly, as
    Iterable's paths are case-sensitive.

    :param raw: the extra's value: a mapping or a JSON object string, ``{"METHOD /api/path": per_second}``.
        A value of ``None``, ``"none"`` or a number <= 0 turns pacing off for that endpoint.
    :param conn_id: the connection id, named in error messages.
    :param endpoints: the endpoint keys the hook calls (``IterableHook.endpoint_keys``).
    :return: endpoint key -> requests per second, ``None`` meaning not paced.
    :raises IterableConfigError: when the value is not such a mapping, or names an unknown endpoint.
    """
    mapping = json_object(
        raw,
        f"Connection {conn_id!r}: extra 'rate_limits'",
        not_json=(
            f"Connection {conn_id!r}: extra 'rate_limits' is not valid JSON; expected an object "
            'such as {"POST /api/users/bulkUpdate": 5}'
        ),
        not_object=(
            f"Connection {conn_id!r}: extra 'rate_limits' must be an object mapping "
            '"METHOD /api/path" to requests per second'
        ),
    )
    if mapping is None:
        return {}
    known = rate_limit_keys(endpoints)
    limits: dict[str, float | None] = {}
    for key, value in mapping.items():
        normalised = " ".join(str(key).split())
        method, _, path = normalised.partition(" ")
        normalised = f"{method.upper()} {path}"
        if not _KEY_PATTERN.match(normalised):
            raise IterableConfigError(
                f"Connection {conn_id!r}: extra 'rate_limits' key {key!r} is not of the form "
                '"METHOD /api/path-template", e.g. "POST /api/users/bulkUpdate" or "GET /api/users/{email}"'
            )
        if normalised not in known:
            raise _unknown_key(key, normalised, known, conn_id)
        limits[normalised] = _parse_rate(value, key=normalised, conn_id=conn_id)
    return limits


def rate_limit_keys(endpoints: Collection[str]) -> frozenset[str]:
    """Return every key the ``rate_limits`` extra accepts.

    :param endpoints: the endpoint keys the hook calls.
    """
    return frozenset(endpoints).union(DEFAULT_RATE_LIMITS)


def _unknown_key(key: Any, normalised: str, known: Collection[str], conn_id: str) -> IterableConfigError:
    close = difflib.get_close_matches(normalised, known, n=1, cutoff=0.8)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return IterableConfigError(
        f"Connection {conn_id!r}: extra 'rate_limits' key {key!r} names no endpoint the hook calls "
        f"or knows a limit for{hint}; the known keys are: {', '.join(sorted(known))}"
    )


def _parse_rate(value: Any, *, key: str, conn_id: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in _DISABLED_WORDS:
        return None
    if isinstance(value, bool):
        number = math.nan  # True/False are not rates; fall through to the error below
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
    if math.isnan(number):
        raise IterableConfigError(
            f"Connection {conn_id!r}: extra 'rate_limits' value for {key!r} must be a number of "
            f"requests per second (or null / <= 0 for no pacing), got {value!r}"
        )
    if number <= 0 or math.isinf(number):
        return None
    return number


class EndpointRateLimiter:
    """Space calls to each endpoint evenly at its rate: a token bucket with a burst of 1.

    Thread-safe: each caller reserves the next free slot under a lock and sleeps outside it, so
    callers are served in arrival order and never exceed the rate together.

    :param limits: endpoint key -> requests per second, positive (``None``: not paced). Keys not
        listed use :data:`DEFAULT_RATE_LIMITS`, then ``default_rate``.
    :param default_rate: requests per second for endpoints found nowhere else.
    :param clock: a monotonic clock in seconds (injectable for tests of the arithmetic).
    :param sleep: how to wait, in seconds.
    """

    def __init__(
        self,
        limits: Mapping[str, float | None] | None = None,
        *,
        default_rate: float = UNDOCUMENTED_RATE_LIMIT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not is_number(default_rate, positive=True):
            raise IterableConfigError(
                f"default_rate must be a positive number of requests per second, got {default_rate!r}"
            )
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._default_rate = default_rate
        self._limits: dict[str, float | None] = {}
        self._next_free: dict[str, float] = {}
        self.configure(limits or {})

    def configure(self, limits: Mapping[str, float | None]) -> None:
        """Set the overrides of the built-in limits (replacing earlier overrides).

        :param limits: endpoint key -> requests per second, ``None`` meaning not paced.
        :raises IterableConfigError: when a rate is not a positive number.
        """
        merged: dict[str, float | None] = dict(DEFAULT_RATE_LIMITS)
        merged.update(limits)
        for endpoint, rate in merged.items():
            # A rate of 0 would divide by zero at the first call, a negative one never wait.
            if rate is not None and not is_number(rate, positive=True):
                raise IterableConfigError(
                    f"the rate of {endpoint!r} must be a positive number of requests per second "
                    f"(or None for no pacing), got {rate!r}"
                )
        with self._lock:
            self._limits = merged

    def rate_for(self, endpoint: str) -> float | None:
        """Return the pace of ``endpoint`` in requests per second, ``None`` when not paced.

        :param endpoint: ``"METHOD /api/path-template"``.
        """
        return self._limits.get(endpoint, self._default_rate)

    def acquire(self, endpoint: str) -> float:
        """Block until a call to ``endpoint`` may start; return the seconds waited.

        :param endpoint: ``"METHOD /api/path-template"``.
        """
        with self._lock:
            rate = self._limits.get(endpoint, self._default_rate)
            if rate is None:
                return 0.0
            now = self._clock()
            # Burst 1: an idle bucket holds at most one token, so the slot is never in the past.
            slot = max(now, self._next_free.get(endpoint, now))
            self._next_free[endpoint] = slot + 1.0 / rate
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait


_registry: dict[tuple[str, str], EndpointRateLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(conn_id: str, base_url: str, limits: Mapping[str, float | None]) -> EndpointRateLimiter:
    """Return the process-wide limiter of one connection, creating it on first use.

    Every hook of a connection shares it, so parallel calls in one process stay within the
    connection's limits together. The overrides are applied on each call, so a connection edited
    while the process runs takes effect for the next hook.

    :param conn_id: the Airflow connection id.
    :param base_url: the connection's base URL (two hosts behind one id are two projects).
    :param limits: the connection's ``rate_limits`` overrides, already parsed.
    """
    key = (conn_id, base_url)
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = _registry[key] = EndpointRateLimiter(limits)
            return limiter
    limiter.configure(limits)
    return limiter
