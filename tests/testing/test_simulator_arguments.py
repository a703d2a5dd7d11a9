"""Bad arguments to the simulator's Python API raise IterableConfigError, naming what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.testing import IterableSimulator


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"api_key": ""}, "api_key"),
        ({"api_key": None}, "api_key"),
        ({"port": 70000}, "port"),
        ({"port": -1}, "port"),
        ({"port": "8765"}, "port"),
        ({"max_recorded_requests": -1}, "max_recorded_requests"),
        ({"max_recorded_requests": 2.5}, "max_recorded_requests"),
        ({"rate_limit_scale": 0}, "rate_limit_scale"),
        ({"rate_limit_scale": float("nan")}, "rate_limit_scale"),
        ({"rate_limit_scale": "1000"}, "rate_limit_scale"),
        ({"rate_limits": {"POST /api/users/update": -1}}, "POST /api/users/update"),
        ({"rate_limits": {"POST /api/users/update": float("inf")}}, "POST /api/users/update"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(IterableConfigError, match=message):
        IterableSimulator(**kwargs)


def _calls() -> list[tuple[str, Callable[[IterableSimulator], Any], str]]:
    return [
        ("fault endpoint not a string", lambda s: s.add_fault(42, status=500), "endpoint"),  # type: ignore[arg-type]
        ("fault endpoint without method", lambda s: s.add_fault("/api/lists", status=500), "endpoint"),
        ("fault status out of range", lambda s: s.add_fault("GET /api/lists", status=99), "status"),
        ("fault status a bool", lambda s: s.add_fault("GET /api/lists", status=True), "status"),
        ("fault body without status", lambda s: s.add_fault("GET /api/lists", body="x"), "body needs"),
        ("fault body of another type", lambda s: s.add_fault("GET /api/lists", status=500, body=[1]), "body"),  # type: ignore[arg-type]
        ("fault delay negative", lambda s: s.add_fault("GET /api/lists", delay=-1), "delay"),
        ("fault delay not a number", lambda s: s.add_fault("GET /api/lists", delay="1"), "delay"),  # type: ignore[arg-type]
        ("fault times zero", lambda s: s.add_fault("GET /api/lists", status=500, times=0), "times"),
        ("rate limit negative", lambda s: s.set_rate_limit("GET /api/lists", -2), "GET /api/lists"),
        ("get_user with both", lambda s: s.get_user(email="a@example.com", user_id="u"), "exactly one"),
        ("get_user with neither", lambda s: s.get_user(), "exactly one"),
        ("add_user with a bad e-mail", lambda s: s.add_user(email="not-an-email"), "cannot add user"),
        ("forget_user with nothing", lambda s: s.forget_user(), "email or user_id"),
        ("campaign of an unknown medium", lambda s: s.add_campaign(7001, "Fax"), "medium"),
        ("campaign id as text", lambda s: s.add_campaign("7001"), "campaign_id"),  # type: ignore[arg-type]
        ("workflow id as text", lambda s: s.add_workflow("3100"), "workflow_id"),  # type: ignore[arg-type]
        ("webhook without an event name", lambda s: s.fire_webhook(""), "event_name"),
    ]


@pytest.mark.parametrize(("call", "message"), [c[1:] for c in _calls()], ids=[c[0] for c in _calls()])
def test_bad_method_arguments(call: Callable[[IterableSimulator], Any], message: str) -> None:
    sim = IterableSimulator(webhook_url="http://127.0.0.1:9/webhooks/iterable_default/system")
    with pytest.raises(IterableConfigError, match=message):
        call(sim)


def test_config_errors_are_still_value_errors() -> None:
    # Code written against the simulator's earlier ValueErrors keeps working.
    with pytest.raises(ValueError, match="port"):
        IterableSimulator(port=70000)
