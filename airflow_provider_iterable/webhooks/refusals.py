"""Report deliveries refused for their secret, so a wrong secret does not fail silently.

Iterable retries a refused delivery, and a sensor waiting for it just waits: the receiver's log
is where a wrong secret shows. A misconfigured webhook sends every event, so the lines are rate
limited: at most one per connection and reason per interval (a minute by default), carrying the
count of refusals left out since the previous one. A line names the connection, the reason and
the sender's address; never the header's value, and nothing from the body.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("airflow_provider_iterable.webhooks")

#: Seconds between two lines for one connection and reason.
REPORT_INTERVAL = 60.0

#: Most (connection, reason) pairs remembered; only connections that exist get this far.
MAX_ENTRIES = 1_000


@dataclass
class _Entry:
    next_report: float
    suppressed: int = 0


class RefusalLog:
    """Log refused deliveries as WARNING, rate limited per connection and reason.

    :param interval: Least seconds between two lines for one connection and reason.
    :param clock: Monotonic time source, injectable for tests.
    :param logger: Where the lines go.
    """

    def __init__(
        self,
        *,
        interval: float = REPORT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._log = logger
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        # The event loop reports; the app's shutdown may flush from a thread.
        self._lock = threading.Lock()

    def report(self, conn_id: str, status: int, reason: str, sender: str) -> None:
        """Record one refusal; log it unless this connection and reason were logged recently.

        :param conn_id: The connection the delivery was addressed to.
        :param status: The HTTP status answered.
        :param reason: Why, in a few words (``"wrong secret in header Authorization"``).
        :param sender: The sender's address, as :func:`sender_address` gives it.
        """
        now = self._clock()
        with self._lock:
            key = (conn_id, reason)
            entry = self._entries.get(key)
            if entry is not None and now < entry.next_report:
                entry.suppressed += 1
                return
            suppressed = entry.suppressed if entry is not None else 0
            self._entries[key] = _Entry(next_report=now + self._interval)
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        # The connection id is logged with %r: it came in the URL.
        if suppressed:
            self._log.warning(
                "Webhook delivery for connection %r refused with %d: %s; sender %s "
                "(%d more like it since the last report)",
                conn_id,
                status,
                reason,
                sender,
                suppressed,
            )
        else:
            self._log.warning(
                "Webhook delivery for connection %r refused with %d: %s; sender %s",
                conn_id,
                status,
                reason,
                sender,
            )

    def flush(self) -> None:
        """Log the refusals left out since each last line (at shutdown), and forget them."""
        with self._lock:
            pending = [(key, entry.suppressed) for key, entry in self._entries.items() if entry.suppressed]
            self._entries.clear()
        for (conn_id, reason), count in pending:
            self._log.warning(
                "Webhook deliveries for connection %r: %d more refused (%s) since the last report",
                conn_id,
                count,
                reason,
            )


def sender_address(peer: str | None, forwarded_for: str | None) -> str:
    """Describe where a delivery came from: the peer, and a proxy's ``X-Forwarded-For``.

    :param peer: The address of the connection's other end, if known.
    :param forwarded_for: The ``X-Forwarded-For`` header, if any (the sender's text: quoted and
        cut short).
    """
    text = peer or "unknown"
    if forwarded_for:
        text += f" (X-Forwarded-For {forwarded_for[:100]!r})"
    return text
