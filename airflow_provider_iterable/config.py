"""Read the ``[iterable]`` configuration section shared by the receiver and the triggers.

The receiver (mounted or standalone) and the triggerer read the same section, so they find the
same event queue. Every value has a default here too, so the code also works where the
provider's config section has not been loaded (a bare ``python -m`` process, a unit test).
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_provider_iterable._values import is_number
from airflow_provider_iterable.exceptions import IterableConfigError

SECTION = "iterable"

DEFAULT_MAX_BODY_BYTES = 1_048_576
DEFAULT_RETENTION_DAYS = 7.0
DEFAULT_DEDUPE_WINDOW_SECONDS = 3600.0
QUEUE_FILE_NAME = "iterable_webhooks.db"


def _conf_get(key: str) -> str | None:
    """Return the raw option from Airflow's config (env vars, ``_cmd`` and ``_secret`` included)."""
    try:
        from airflow.configuration import conf
    except ImportError:  # pragma: no cover - Airflow is a dependency; keep the fallback honest
        return os.environ.get(f"AIRFLOW__{SECTION.upper()}__{key.upper()}")
    value = conf.get(SECTION, key, fallback=None)
    if value is None or str(value).strip() == "":
        return None
    return str(value).strip()


def airflow_home() -> Path:
    """Return ``$AIRFLOW_HOME`` as Airflow resolves it (``~/airflow`` when unset)."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow").expanduser()


def default_queue_url() -> str:
    """Return the embedded default: a SQLite file in ``$AIRFLOW_HOME``."""
    return f"sqlite:///{airflow_home() / QUEUE_FILE_NAME}"


def queue_url() -> str:
    """Return the SQLAlchemy URL of the event queue (``[iterable] queue_url``)."""
    return _conf_get("queue_url") or default_queue_url()


def sync_state_url() -> str:
    """Return the SQLAlchemy URL of the provider's state database (``[iterable] sync_state_url``).

    It holds the syncs' fingerprints and the runs table; by default it is the event queue's
    database, so a deployment that moved the queue to PostgreSQL for several machines has its
    sync state there too.
    """
    return _conf_get("sync_state_url") or queue_url()


def _positive_number(key: str, default: float, *, minimum: float = 0) -> float:
    raw = _conf_get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise IterableConfigError(f"[{SECTION}] {key} must be a number, got {raw!r}") from None
    if not is_number(value):  # "nan" and "inf" parse as floats
        raise IterableConfigError(f"[{SECTION}] {key} must be a finite number, got {raw!r}")
    if value < minimum:
        wanted = "not be negative" if minimum == 0 else f"be at least {minimum:g}"
        raise IterableConfigError(f"[{SECTION}] {key} must {wanted}, got {raw!r}")
    return value


def webhook_max_body_bytes() -> int:
    """Return the largest webhook body the receiver accepts, in bytes."""
    # A limit of 0 would refuse every delivery with 413: a typo, not a setting.
    return int(_positive_number("webhook_max_body_bytes", DEFAULT_MAX_BODY_BYTES, minimum=1))


def webhook_retention_days() -> float:
    """Return how many days stored events are kept before they may be purged."""
    return _positive_number("webhook_retention_days", DEFAULT_RETENTION_DAYS)


def webhook_dedupe_window_seconds() -> float:
    """Return the window in which an identical delivery counts as a retry, in seconds."""
    return _positive_number("webhook_dedupe_window_seconds", DEFAULT_DEDUPE_WINDOW_SECONDS)
