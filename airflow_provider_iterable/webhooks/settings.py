"""The webhook receiver's settings: one object, checked once, documented once.

:func:`~airflow_provider_iterable.webhooks.create_app` builds a :class:`ReceiverSettings` from
its keyword arguments; the receiver reads only that object. Settings left ``None`` come from the
``[iterable]`` configuration section, read by :meth:`ReceiverSettings.resolve` when the receiver
starts, never when the app is built: Airflow builds the app while it imports its plugins in
every scheduler and worker, where an invalid ``[iterable]`` value must not fail the import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_iterable import config
from airflow_provider_iterable._values import is_number, whole_number
from airflow_provider_iterable.exceptions import IterableConfigError

#: Where deliveries are stored from: a process beside the receiver, or a thread inside it.
WRITERS = ("process", "thread")


@dataclass(frozen=True, kw_only=True)
class ReceiverSettings:
    """Everything the webhook receiver can be told.

    :param queue_url: SQLAlchemy URL of the event queue; ``None`` means ``[iterable] queue_url``,
        read by each process that opens the queue (the writer process too, so a URL with a
        password in the configuration never travels through an environment variable).
    :param max_body_bytes: Largest body accepted, in bytes; ``None`` means ``[iterable]
        webhook_max_body_bytes`` (default 1 MiB).
    :param dedupe_window_seconds: How long an identical delivery counts as a retry; ``None``
        means ``[iterable] webhook_dedupe_window_seconds`` (default 3600); 0 disables it.
    :param connection_lookup: Replaces the Airflow connection lookup (tests only): takes a
        connection id, returns the connection's extra as a mapping, a ``WebhookAuth`` or ``None``.
    :param conn_cache_seconds: How long a found connection is reused before it is looked up
        again (default 30).
    :param unknown_conn_cache_seconds: How long an unknown connection id stays unknown
        (default 60).
    :param retention_days: Age after which events are purged; ``None`` means ``[iterable]
        webhook_retention_days`` (default 7).
    :param purge_interval_seconds: Seconds between background purges (default 3600); 0 disables
        them.
    :param store_events: ``False`` answers 200 without storing anything (the benchmark's
        baseline only).
    :param busy_timeout: Seconds a write waits for the queue's lock before the delivery gets
        503 (default 5).
    :param retry_after_seconds: The ``Retry-After`` sent with a 503 (default 5).
    :param max_batch: Most events committed in one transaction (default 512).
    :param writer: ``"process"`` (default) stores from a writer process beside the receiver, so
        database work never contends with the event loop for the interpreter lock;
        ``"thread"`` stores from a thread in the receiver's process (no extra process).
    :param freeze_gc: After the first delivery (when Airflow's modules are loaded), move every
        object alive into the garbage collector's permanent generation (:func:`gc.freeze`), so
        full collections stop pausing the event loop. Process-wide, so only for a process that
        serves the receiver alone (``iterable-webhooks serve`` sets it).
    :raises IterableConfigError: When a setting has the wrong type or is out of range (the
        message names it).
    """

    queue_url: str | None = None
    max_body_bytes: int | None = None
    dedupe_window_seconds: float | None = None
    connection_lookup: Callable[[str], Any] | None = None
    conn_cache_seconds: float = 30.0
    unknown_conn_cache_seconds: float = 60.0
    retention_days: float | None = None
    purge_interval_seconds: float = 3600.0
    store_events: bool = True
    busy_timeout: float = 5.0
    retry_after_seconds: int = 5
    max_batch: int = 512
    writer: str = "process"
    freeze_gc: bool = False

    def __post_init__(self) -> None:
        if self.max_body_bytes is not None:
            whole_number(self.max_body_bytes, "max_body_bytes", minimum=1)
        for name in (
            "dedupe_window_seconds",
            "conn_cache_seconds",
            "unknown_conn_cache_seconds",
            "retention_days",
            "purge_interval_seconds",
        ):
            _seconds(name, getattr(self, name), allow_zero=True)
        _seconds("busy_timeout", self.busy_timeout, allow_zero=False)
        _seconds("retry_after_seconds", self.retry_after_seconds, allow_zero=False)
        whole_number(self.max_batch, "max_batch", minimum=1)
        if self.writer not in WRITERS:
            raise IterableConfigError(f"writer must be 'process' or 'thread', got {self.writer!r}")
        if self.connection_lookup is not None and not callable(self.connection_lookup):
            raise IterableConfigError("connection_lookup must be callable")
        if self.queue_url is not None and not isinstance(self.queue_url, str):
            raise IterableConfigError(f"queue_url must be a string, got {type(self.queue_url).__name__}")
        # A header carries whole seconds; flags may come as any truthy value.
        object.__setattr__(self, "retry_after_seconds", int(self.retry_after_seconds))
        object.__setattr__(self, "store_events", bool(self.store_events))
        object.__setattr__(self, "freeze_gc", bool(self.freeze_gc))

    @classmethod
    def from_overrides(cls, base: ReceiverSettings | None, overrides: Mapping[str, Any]) -> ReceiverSettings:
        """Return ``base`` (default: every default) with ``overrides`` applied, checked.

        :param base: Settings to start from, or ``None``.
        :param overrides: Setting names and values.
        :raises IterableConfigError: For an unknown name (the message lists the known ones) or a
            bad value.
        """
        known = [item.name for item in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise IterableConfigError(
                f"unknown receiver setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        if base is not None and not isinstance(base, cls):
            raise IterableConfigError(f"settings must be a ReceiverSettings, got {type(base).__name__}")
        return dataclasses.replace(base, **overrides) if base is not None else cls(**overrides)

    def resolve(self) -> ReceiverSettings:
        """Return these settings with every ``[iterable]`` default read (except ``queue_url``).

        :raises IterableConfigError: When an ``[iterable]`` value is invalid.
        """
        return dataclasses.replace(
            self,
            max_body_bytes=(
                self.max_body_bytes if self.max_body_bytes is not None else config.webhook_max_body_bytes()
            ),
            dedupe_window_seconds=(
                self.dedupe_window_seconds
                if self.dedupe_window_seconds is not None
                else config.webhook_dedupe_window_seconds()
            ),
            retention_days=(
                self.retention_days if self.retention_days is not None else config.webhook_retention_days()
            ),
        )


def _seconds(name: str, value: Any, *, allow_zero: bool) -> None:
    if value is None:
        return
    if not is_number(value):
        raise IterableConfigError(f"{name} must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise IterableConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
