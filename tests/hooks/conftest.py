"""Fixtures of the hook tests: a simulator per test and hooks on connections that point at it."""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from airflow_provider_iterable.hooks.iterable import IterableHook
from airflow_provider_iterable.testing import IterableSimulator

HookFactory = Callable[..., IterableHook]


@pytest.fixture
def sim() -> Iterator[IterableSimulator]:
    """An Iterable simulator on loopback with Iterable's documented rate limits enforced."""
    with IterableSimulator() as simulator:
        yield simulator


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, connection: dict[str, Any]) -> None:
    """Define an Airflow connection through its ``AIRFLOW_CONN_<ID>`` environment variable."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))


def new_conn_id() -> str:
    # A fresh id per hook: limiters are shared per connection in the process, tests must not share.
    return f"iterable_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_hook(sim: IterableSimulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[HookFactory]:
    """Return a factory of hooks on a new connection to ``sim`` (``extra`` as keyword arguments)."""
    hooks: list[IterableHook] = []

    def factory(
        *,
        conn_id: str | None = None,
        hook_kwargs: dict[str, Any] | None = None,
        **extra: Any,
    ) -> IterableHook:
        conn_id = conn_id or new_conn_id()
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", sim.connection_json(**extra))
        hook = IterableHook(conn_id, **(hook_kwargs or {}))
        hooks.append(hook)
        return hook

    yield factory
    for hook in hooks:
        hook.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound by the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HookLogs:
    """What the hook logged through Airflow's structlog logger, at every level down to DEBUG."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries

    def messages(self, level: str | None = None) -> list[str]:
        """Return the rendered messages, optionally only those of one level (``"warning"``)."""
        return [str(e.get("event")) for e in self.entries if level is None or e.get("log_level") == level]

    @property
    def text(self) -> str:
        """Every captured entry rendered with all its fields, one per line."""
        return "\n".join(repr(entry) for entry in self.entries)


@pytest.fixture
def hook_logs() -> Iterator[HookLogs]:
    """Capture the hook's log entries (Airflow logs through structlog, which ``caplog`` misses)."""
    saved = structlog.get_config()
    # Airflow filters below INFO by default; hooks built inside the test bind this level instead.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as entries:
            yield HookLogs(entries)
    finally:
        structlog.configure(wrapper_class=saved["wrapper_class"])
