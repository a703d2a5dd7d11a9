"""Fixtures for the simulator's own tests: a simulator and a plain HTTP client for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_iterable.testing import IterableSimulator
from tests.testing._client import ApiClient


@pytest.fixture
def sim() -> Iterator[IterableSimulator]:
    """A simulator with Iterable's real rate limits."""
    with IterableSimulator() as simulator:
        yield simulator


@pytest.fixture
def api(sim: IterableSimulator) -> Iterator[ApiClient]:
    """A keep-alive HTTP client for ``sim`` that sends the right API key."""
    with ApiClient(sim) as client:
        yield client
