"""Airflow finds the provider: its listing, connection form, config section and Test button."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from airflow_provider_iterable import __version__
from airflow_provider_iterable.get_provider_info import get_provider_info


def _airflow(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _json_rows(output: str) -> list[dict[str, Any]]:
    # The CLI may print log lines before the JSON document; the document is the last line.
    return json.loads(output.strip().splitlines()[-1])


def test_provider_info_matches_the_distribution() -> None:
    from importlib.metadata import distribution

    info = get_provider_info()
    dist = distribution("airflow-provider-iterable")
    assert info["package-name"] == dist.metadata["Name"]
    assert info["versions"] == [__version__] == [dist.version]
    entry_points = {ep.group: ep.value for ep in dist.entry_points}
    assert entry_points["apache_airflow_provider"] == (
        "airflow_provider_iterable.get_provider_info:get_provider_info"
    )
    assert entry_points["airflow.plugins"] == "airflow_provider_iterable.plugins:IterableWebhooksPlugin"


def test_provider_info_is_valid_against_airflows_schema() -> None:
    import importlib.resources

    import jsonschema

    schema = json.loads(
        importlib.resources.files("airflow").joinpath("provider_info.schema.json").read_text()
    )
    jsonschema.validate(get_provider_info(), schema)


@pytest.mark.slow
def test_airflow_lists_the_provider_hook_and_connection_form() -> None:
    providers = _json_rows(_airflow("providers", "list", "-o", "json"))
    assert {"package_name": "airflow-provider-iterable"}.items() <= next(
        p for p in providers if p["package_name"] == "airflow-provider-iterable"
    ).items()

    hooks = _json_rows(_airflow("providers", "hooks", "-o", "json"))
    iterable = next(h for h in hooks if h["connection_type"] == "iterable")
    assert iterable["class"] == "airflow_provider_iterable.hooks.iterable.IterableHook"
    assert iterable["conn_id_attribute_name"] == "iterable_conn_id"

    widgets = {
        w["connection_parameter_name"] for w in _json_rows(_airflow("providers", "widgets", "-o", "json"))
    }
    assert {
        "extra__iterable__region",
        "extra__iterable__webhook_secrets",
        "extra__iterable__webhook_secret_header",
        "extra__iterable__timeout",
    } <= widgets

    behaviours = _json_rows(_airflow("providers", "behaviours", "-o", "json"))
    assert {"field_behaviours": "iterable"} in behaviours


@pytest.mark.slow
def test_airflow_config_shows_the_iterable_section() -> None:
    out = _airflow("config", "list", "--section", "iterable", "--include-descriptions")
    for key in (
        "queue_url",
        "webhook_max_body_bytes",
        "webhook_retention_days",
        "webhook_dedupe_window_seconds",
    ):
        assert key in out
    value = _airflow(
        "config", "get-value", "iterable", "webhook_retention_days",
        env={"AIRFLOW__ITERABLE__WEBHOOK_RETENTION_DAYS": "3"},
    )  # fmt: skip
    assert value.strip() == "3"


@pytest.mark.slow
def test_connections_test_calls_channels_on_the_simulator(simulator: Any, airflow_db: object) -> None:
    env = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    out = _airflow("connections", "test", "iterable_default", env=env)
    assert "success" in out.lower()
    assert [r.endpoint for r in simulator.requests] == ["GET /api/channels"]

    bad = json.loads(simulator.connection_json())
    bad["password"] = "0" * 32
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "test", "iterable_default"],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "AIRFLOW_CONN_ITERABLE_DEFAULT": json.dumps(bad)},
        timeout=180,
    )
    text = result.stdout + result.stderr
    assert "connection failed" in text.lower()
    # The Host is the simulator, not one of Iterable's data centers: the message names the host.
    assert "BadApiKey" in text and "(the connection's Host) rejected the API key" in text
    assert "data center" not in text
    assert "0" * 32 not in text
