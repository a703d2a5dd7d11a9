"""Find the Airflow connection named in a webhook URL, with a short cache.

The lookup goes through :meth:`airflow.sdk.Connection.get` (what ``BaseHook.get_connection``
calls), which picks its secrets backends from the process it runs in:

* mounted on Airflow's API server (``airflow api-server`` marks its process as a server), the
  server chain: any secrets backend configured in ``[secrets] backend``, ``AIRFLOW_CONN_*``
  environment variables, then the metadata database, exactly like every other server component;
* standalone (``iterable-webhooks serve``), the fallback chain: the configured secrets backend
  (``[workers] secrets_backend``, else ``[secrets] backend``), then environment variables, never
  the metadata database, which such a host need not reach.

Only connections of type ``iterable`` count; any other id is unknown (404). Found connections
are cached for ``found_ttl`` seconds and unknown ids for ``unknown_ttl`` seconds, so a scan of
made-up ids costs one backend lookup per id per minute, not one per request. Lookups of one id
already in flight are shared, and the blocking lookup runs in a worker thread.

A lookup that fails (the secrets backend or the metadata database is down) is not an unknown
id: it raises :class:`ConnectionLookupError`, which the receiver answers with a 503, so the
sender retries instead of taking a 404 for a project that exists. The failure is remembered for
a few seconds only, so an outage costs the backend one lookup per id every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from airflow_provider_iterable.exceptions import ConnectionLookupError, IterableConfigError
from airflow_provider_iterable.webhooks.auth import WebhookAuth, auth_from_extra

log = logging.getLogger(__name__)

CONN_TYPE = "iterable"

#: Connection ids the receiver will look up: what Airflow's own connection ids use. Anything
#: else is unknown without asking any backend.
CONN_ID_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,250}")

#: Entries beyond this are dropped oldest first, so a scan cannot grow the cache without bound.
MAX_CACHE_ENTRIES = 10_000

#: Most seconds a failed lookup is remembered (never longer than an unknown id is).
FAILED_LOOKUP_TTL = 5.0

ConnectionLookup = Callable[[str], "WebhookAuth | None"]


def lookup_airflow_connection(conn_id: str) -> WebhookAuth | None:
    """Return the webhook settings of Airflow connection ``conn_id``, or ``None`` if unknown.

    Blocking (a secrets backend or the metadata database may be asked): call it in a thread.

    :param conn_id: The connection id from the URL.
    """
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return None
    if conn is None or (conn.conn_type or "").lower() != CONN_TYPE:
        return None
    try:
        return auth_from_extra(conn.extra_dejson)
    except IterableConfigError as exc:
        # A misconfigured connection refuses every delivery (401) rather than letting one in.
        log.warning("Connection %s has invalid webhook settings: %s", conn_id, exc)
        return WebhookAuth(secrets=(), allow_anonymous=False, settings_invalid=True)


class ConnectionCache:
    """A TTL cache in front of a blocking connection lookup.

    :param lookup: Returns the :class:`WebhookAuth` of a connection id, or ``None`` if unknown.
    :param found_ttl: Seconds a found connection is reused before it is looked up again.
    :param unknown_ttl: Seconds an unknown id stays unknown before it is looked up again.
    :param clock: Monotonic time source, injectable for tests.
    """

    def __init__(
        self,
        lookup: ConnectionLookup,
        *,
        found_ttl: float = 30.0,
        unknown_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if found_ttl < 0 or unknown_ttl < 0:
            raise IterableConfigError("found_ttl and unknown_ttl must not be negative")
        self._lookup = lookup
        self._found_ttl = found_ttl
        self._unknown_ttl = unknown_ttl
        self._clock = clock
        # A cached ConnectionLookupError stands for a failed lookup, re-raised until it expires.
        self._entries: OrderedDict[str, tuple[float, WebhookAuth | ConnectionLookupError | None]] = (
            OrderedDict()
        )
        self._inflight: dict[str, asyncio.Future[WebhookAuth | ConnectionLookupError | None]] = {}
        self.lookups = 0  # backend lookups done, for tests and diagnostics

    async def get(self, conn_id: str) -> WebhookAuth | None:
        """Return the settings of ``conn_id``, or ``None`` when it is unknown.

        :param conn_id: The connection id from the URL.
        :raises ConnectionLookupError: When the lookup failed (recently).
        """
        if not CONN_ID_PATTERN.fullmatch(conn_id):
            return None
        now = self._clock()
        entry = self._entries.get(conn_id)
        if entry is not None and entry[0] > now:
            return _unwrap(entry[1])
        task = self._inflight.get(conn_id)
        if task is None:
            # The lookup is a task of its own, not part of the first request: a sender that
            # hangs up does not cancel it for the others waiting on the same id.
            task = asyncio.ensure_future(self._lookup_and_store(conn_id))
            self._inflight[conn_id] = task
        return _unwrap(await asyncio.shield(task))

    async def _lookup_and_store(self, conn_id: str) -> WebhookAuth | ConnectionLookupError | None:
        try:
            result = await asyncio.to_thread(self._safe_lookup, conn_id)
        finally:
            self._inflight.pop(conn_id, None)
        if isinstance(result, ConnectionLookupError):
            ttl = min(FAILED_LOOKUP_TTL, self._unknown_ttl)
        else:
            ttl = self._found_ttl if result is not None else self._unknown_ttl
        self._entries[conn_id] = (self._clock() + ttl, result)
        self._entries.move_to_end(conn_id)
        while len(self._entries) > MAX_CACHE_ENTRIES:
            self._entries.popitem(last=False)
        return result

    def _safe_lookup(self, conn_id: str) -> WebhookAuth | ConnectionLookupError | None:
        self.lookups += 1
        try:
            return self._lookup(conn_id)
        except Exception as exc:
            # Returned, not raised: the failure is cached like an answer. Only the type is
            # logged and kept: the text may hold backend details (a URL with a password).
            log.warning("Looking up connection %s failed: %s", conn_id, type(exc).__name__)
            return ConnectionLookupError(f"looking up the connection failed: {type(exc).__name__}")

    def clear(self) -> None:
        """Forget every cached entry."""
        self._entries.clear()


def _unwrap(result: WebhookAuth | ConnectionLookupError | None) -> WebhookAuth | None:
    if isinstance(result, ConnectionLookupError):
        # A new exception per request: one shared instance would gather every raiser's traceback.
        raise ConnectionLookupError(*result.args)
    return result


def make_lookup(connection_lookup: Callable[[str], Any] | None) -> ConnectionLookup:
    """Return the lookup to use: Airflow's by default, else ``connection_lookup``.

    An injected lookup may return a :class:`WebhookAuth`, a mapping (taken as a connection's
    extra) or ``None`` for unknown.

    :param connection_lookup: Optional replacement lookup.
    """
    if connection_lookup is None:
        return lookup_airflow_connection

    def lookup(conn_id: str) -> WebhookAuth | None:
        result = connection_lookup(conn_id)
        if result is None or isinstance(result, WebhookAuth):
            return result
        return auth_from_extra(result)

    return lookup
