"""What a storage failure looks like to the rest of the provider: one exception, decided by type and code.

Whatever the driver raises (SQLite locked, read-only or full; PostgreSQL refusing connections or
timing out on a lock) becomes :class:`~airflow_provider_iterable.exceptions.QueueUnavailableError`,
so the receiver answers 503 and triggers retry without knowing either driver.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from airflow_provider_iterable.event_queue.schema import safe_url
from airflow_provider_iterable.exceptions import QueueUnavailableError

log = logging.getLogger(__name__)

try:  # psycopg is an optional extra: only PostgreSQL deployments install it.
    import psycopg as _psycopg

    _DRIVER_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, _psycopg.Error)
except ImportError:  # pragma: no cover - the dev environment has psycopg
    _DRIVER_ERRORS = (sqlite3.Error,)

#: Everything that means "the store could not do it", turned into QueueUnavailableError.
STORAGE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError, *_DRIVER_ERRORS)

# SQLite's primary result codes for "another connection holds the lock" (https://sqlite.org/rescode.html).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def sqlite_lock_error(exc: BaseException) -> bool:
    """Return whether a ``sqlite3`` error means another connection holds the lock (busy or locked).

    Decided by SQLite's result code (``sqlite_errorcode``, extended codes reduced to their
    primary code). Python 3.10's ``sqlite3`` exceptions carry no code; there, and only here,
    the message is all there is to go by.

    :param exc: The exception ``sqlite3`` raised.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


@contextmanager
def translate_errors(action: str, url: str) -> Iterator[None]:
    """Turn any storage failure inside the block into :class:`QueueUnavailableError`.

    :param action: What was being done, for the message (``"append"``, ``"fetch"``).
    :param url: The queue URL (its password is masked in the message).
    """
    try:
        yield
    except QueueUnavailableError:
        raise
    except STORAGE_ERRORS as exc:
        # The driver's message names the cause (locked, read-only, disk full, connection refused)
        # without data from the events; the URL's password is masked.
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = detail[0] if detail else type(exc).__name__
        raise QueueUnavailableError(
            f"event queue {safe_url(url)} unavailable ({action}): {type(exc).__name__}: {reason}"
        ) from exc


def discard(conn: Any) -> None:
    """Invalidate a connection after a storage error, so its pool opens a fresh one next time."""
    try:
        conn.invalidate()
    except Exception:  # already closed or invalidated: nothing left to discard
        log.debug("could not invalidate a failed queue connection", exc_info=True)


__all__ = ["STORAGE_ERRORS", "discard", "sqlite_lock_error", "translate_errors"]
