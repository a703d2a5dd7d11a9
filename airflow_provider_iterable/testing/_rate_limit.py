"""Per-endpoint rate limits of the simulator: Iterable's documented limits as leaky buckets."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from airflow_provider_iterable._values import is_number
from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.rate_limits import DEFAULT_RATE_LIMITS, UNDOCUMENTED_RATE_LIMIT

# One table for the hook's pacing and the simulator's 429s: they must agree, or the simulator
# would test the hook against limits Iterable does not have.
__all__ = ["DEFAULT_RATE_LIMITS", "UNDOCUMENTED_RATE_LIMIT", "RateLimiter"]


class _Bucket:
    """A leaky bucket holding up to ``capacity`` tokens, refilled at ``rate`` tokens a second."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        # A burst of at least two tokens: a client pacing at exactly the limit sends its next call a
        # hair early now and then (timer and scheduling jitter), and must not be punished for it.
        self.capacity = max(2.0, rate)
        self.tokens = self.capacity
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateLimiter:
    """Thread-safe set of leaky buckets, one per endpoint key.

    :param overrides: per-second limits replacing the defaults for some endpoint keys.
    :param scale: multiplies every limit given here (defaults and ``overrides``).
    :param enforce: when false, :meth:`allow` always admits.
    """

    def __init__(
        self, overrides: Mapping[str, float] | None = None, *, scale: float = 1.0, enforce: bool = True
    ) -> None:
        if not is_number(scale, positive=True):
            raise IterableConfigError(f"rate_limit_scale must be a positive number, got {scale!r}")
        self.scale = scale
        self.enforce = enforce
        self._base: dict[str, float] = dict(DEFAULT_RATE_LIMITS)
        for endpoint, per_second in (overrides or {}).items():
            self._base[endpoint] = _check_rate(endpoint, per_second)
        # Limits set at run time through set_limit(): exact, not scaled. None = unlimited.
        self._exact: dict[str, float | None] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._limited: dict[str, int] = {}
        self._lock = threading.Lock()

    def limit(self, endpoint: str) -> float | None:
        """Return the effective limit of ``endpoint`` in requests per second (None: unlimited)."""
        if endpoint in self._exact:
            return self._exact[endpoint]
        return self._base.get(endpoint, UNDOCUMENTED_RATE_LIMIT) * self.scale

    def set_limit(self, endpoint: str, per_second: float | None) -> None:
        """Set the effective limit of ``endpoint`` (not scaled); None removes its limit."""
        with self._lock:
            self._exact[endpoint] = None if per_second is None else _check_rate(endpoint, per_second)
            self._buckets.pop(endpoint, None)

    def allow(self, endpoint: str) -> bool:
        """Take a token for one request to ``endpoint``; False (and counted) when the bucket is empty."""
        if not self.enforce:
            return True
        with self._lock:
            bucket = self._buckets.get(endpoint)
            now = time.monotonic()
            if bucket is None:
                rate = self.limit(endpoint)
                if rate is None:
                    return True
                bucket = self._buckets[endpoint] = _Bucket(rate, now)
            if bucket.take(now):
                return True
            self._limited[endpoint] = self._limited.get(endpoint, 0) + 1
            return False

    def limited_count(self, endpoint: str | None = None) -> int:
        """Return how many requests were refused, for one endpoint or for all."""
        with self._lock:
            if endpoint is None:
                return sum(self._limited.values())
            return self._limited.get(endpoint, 0)


def _check_rate(endpoint: str, per_second: float) -> float:
    if not is_number(per_second, positive=True):
        raise IterableConfigError(
            f"rate limit for {endpoint!r} must be a positive number, got {per_second!r}"
        )
    return float(per_second)
