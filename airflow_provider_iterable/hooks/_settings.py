"""The hook's settings: its Airflow connection read once and validated before any request.

The connection's password is the API key; extra ``region`` picks the data center, or the Host
field (with its scheme) overrides it; extra ``timeout`` bounds every request; extra
``rate_limits`` overrides the built-in pacing. ``webhook_*`` extras belong to the webhook
receiver: they are not read here, and never logged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk.log import mask_secret

from airflow_provider_iterable._values import is_number, json_object
from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.hooks._rate_limit import parse_rate_limits

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_CONNECT_TIMEOUT",
    "REGION_BASE_URLS",
    "HookSettings",
    "load_settings",
    "positive_seconds",
]

#: Iterable's data centers and their API base URLs.
REGION_BASE_URLS: Mapping[str, str] = {
    "us": "https://api.iterable.com",
    "eu": "https://api.eu.iterable.com",
}
#: Seconds to wait for an answer unless the connection or the hook says otherwise.
DEFAULT_TIMEOUT = 30.0
#: Connecting is fast or it fails: no need to wait as long as for a slow bulk answer.
MAX_CONNECT_TIMEOUT = 10.0

_API_KEY_PATTERN = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class HookSettings:
    """What the hook reads from its Airflow connection, validated.

    :param api_key: the API key (already registered with Airflow's secrets masker).
    :param base_url: the API's base URL without a trailing slash.
    :param connect_timeout: seconds to wait for a connection.
    :param read_timeout: seconds to wait for an answer.
    :param rate_limits: the connection's pacing overrides, endpoint key -> requests per second
        (``None``: not paced).
    :param data_center: ``"us"`` or ``"eu"`` when ``base_url`` is one of Iterable's data centers,
        ``None`` for any other host (the simulator, a proxy).
    :param from_host: whether ``base_url`` came from the connection's Host field (else from the region).
    """

    api_key: str
    base_url: str
    connect_timeout: float
    read_timeout: float
    rate_limits: dict[str, float | None]
    data_center: str | None = None
    from_host: bool = False


def load_settings(
    conn: Any, *, conn_id: str, timeout: float | None, endpoints: Collection[str], log: Any
) -> HookSettings:
    """Validate an Airflow connection of type ``iterable``; return the hook's settings.

    :param conn: the connection (``password``, ``host``, ``port``, ``extra``, ``extra_dejson``).
    :param conn_id: its id, named in messages.
    :param timeout: the hook's own timeout in seconds, which overrides the ``timeout`` extra.
    :param endpoints: the endpoint keys the hook calls, which ``rate_limits`` may name.
    :param log: where a key that does not look like Iterable's is warned about.
    :raises IterableConfigError: when the connection cannot be used.
    """
    # Airflow turns an extra that is not JSON into {} (with a log line); parsing the raw text
    # again then says so, instead of quietly using the defaults (region us, no overrides).
    extra = (
        json_object(
            conn.extra_dejson or conn.extra,
            f"Connection {conn_id!r}: the extra field",
            not_json=f"Connection {conn_id!r}: the extra field is not valid JSON",
        )
        or {}
    )

    api_key = (conn.password or "").strip()
    if not api_key:
        raise IterableConfigError(
            f"Connection {conn_id!r} has no API key: put the Iterable API key in the "
            "connection's password field (API key)"
        )
    mask_secret(api_key)
    if not _API_KEY_PATTERN.match(api_key):
        log.warning(
            "The API key of connection %r does not look like an Iterable key (32 lower-case "
            "hexadecimal characters); check that it was copied whole, without spaces",
            conn_id,
        )

    host = (conn.host or "").strip()
    base_url = _base_url(host, conn.port, extra.get("region"), conn_id)

    if timeout is None:
        raw_timeout = extra.get("timeout")
        timeout = (
            DEFAULT_TIMEOUT
            if raw_timeout in (None, "")
            else positive_seconds(raw_timeout, f"connection {conn_id!r} extra 'timeout'")
        )
    return HookSettings(
        api_key=api_key,
        base_url=base_url,
        data_center=next((name for name, url in REGION_BASE_URLS.items() if url == base_url), None),
        from_host=bool(host),
        connect_timeout=min(timeout, MAX_CONNECT_TIMEOUT),
        read_timeout=timeout,
        rate_limits=parse_rate_limits(extra.get("rate_limits"), conn_id=conn_id, endpoints=endpoints),
    )


def positive_seconds(value: Any, name: str) -> float:
    """Return ``value`` as a positive, finite number of seconds (a number or its text).

    :param value: the setting.
    :param name: what it is, for the message.
    :raises IterableConfigError: when it is not one (``True`` is not a number of seconds).
    """
    if not isinstance(value, bool):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        if is_number(seconds, positive=True):
            return seconds
    raise IterableConfigError(f"{name} must be a positive, finite number of seconds, got {value!r}")


def _base_url(host: str, port: int | None, region: Any, conn_id: str) -> str:
    """Return the API base URL: the Host field when set, else the region's URL."""
    if host:
        host = host.rstrip("/")
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise IterableConfigError(
                f"Connection {conn_id!r}: host {host!r} needs a scheme, e.g. https://{parts.path or host} "
                "(or leave the host empty and set the extra 'region' to us or eu)"
            )
        if port and parts.port is None:
            host = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
        # Every path the hook sends starts with /api, so a host written with it must not double it.
        if host.endswith("/api"):
            host = host[: -len("/api")]
        return host
    name = "us" if region is None or str(region).strip() == "" else str(region).strip().lower()
    if name not in REGION_BASE_URLS:
        raise IterableConfigError(
            f"Connection {conn_id!r}: unknown region {region!r} in extra 'region'; allowed values: "
            f"{', '.join(REGION_BASE_URLS)}"
        )
    return REGION_BASE_URLS[name]
