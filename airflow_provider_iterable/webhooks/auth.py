"""Shared-secret check for webhook deliveries.

Iterable signs nothing: a webhook carries a static secret in a header of the user's choice
(``Authorization`` by default, written as ``Basic <secret>``, ``OAuth2 <secret>``, ``Bearer
<secret>`` or bare). The secrets live in the Airflow connection named in the URL, in extra
``webhook_secrets`` (a list, or one comma-separated string: several at once, so a secret can be
rotated without downtime). Every comparison is :func:`hmac.compare_digest` against every
configured secret, so the time taken does not tell which one nearly matched.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from airflow_provider_iterable.exceptions import IterableConfigError

DEFAULT_SECRET_HEADER = "Authorization"

#: Scheme words Iterable's webhook forms put before the secret; compared case-insensitively.
SCHEMES = ("basic", "oauth2", "bearer")


class Refusal(Enum):
    """Why a delivery is refused with 401: :attr:`value` for the log, :attr:`detail` for the answer."""

    NO_SECRET_CONFIGURED = "no webhook secret configured for the connection"
    SETTINGS_INVALID = "the connection's webhook settings are invalid"
    SECRET_MISSING = "no secret in the header"
    SECRET_WRONG = "wrong secret in the header"

    @property
    def detail(self) -> str:
        """The answer's text: fixed, and never the header's value."""
        return _DETAILS[self]


_DETAILS = {
    Refusal.NO_SECRET_CONFIGURED: (
        "no webhook secret is configured for this connection: set webhook_secrets in its extra "
        '(or "webhook_auth": "none")'
    ),
    Refusal.SETTINGS_INVALID: "the connection's webhook settings are invalid",
    Refusal.SECRET_MISSING: "missing or invalid webhook secret",
    Refusal.SECRET_WRONG: "missing or invalid webhook secret",
}


@dataclass(frozen=True)
class WebhookAuth:
    """How deliveries through one connection are authenticated.

    :param secrets: The accepted secrets (UTF-8 bytes); empty means no secret is configured.
    :param header: The header that carries the secret (compared case-insensitively).
    :param allow_anonymous: ``True`` when the connection says ``"webhook_auth": "none"``; only
        consulted when no secret is configured: a configured secret is always required.
    :param settings_invalid: ``True`` when the connection's webhook extras could not be read;
        every delivery is then refused.
    """

    secrets: tuple[bytes, ...] = field(repr=False)
    header: str = DEFAULT_SECRET_HEADER
    allow_anonymous: bool = False
    settings_invalid: bool = False

    def __repr__(self) -> str:
        # Never show the secrets, not even in a debugger or an exception's locals.
        return (
            f"WebhookAuth(secrets=<{len(self.secrets)} configured>, header={self.header!r}, "
            f"allow_anonymous={self.allow_anonymous}, settings_invalid={self.settings_invalid})"
        )

    @property
    def header_lower(self) -> str:
        """Return the header name in lower case, as ASGI scopes carry header names."""
        return self.header.lower()

    def check(self, header_value: str | bytes | None) -> bool:
        """Return whether a delivery carrying ``header_value`` in :attr:`header` is let in.

        :param header_value: The raw header value, or ``None`` when the header is absent.
        """
        if self.settings_invalid:
            return False
        if not self.secrets:
            return self.allow_anonymous
        if header_value is None:
            return False
        raw = header_value.encode("latin-1", "replace") if isinstance(header_value, str) else header_value
        raw = raw.strip()
        candidates = [raw]
        scheme, _, rest = raw.partition(b" ")
        if rest and scheme.lower().decode("latin-1") in SCHEMES:
            candidates.append(rest.strip())
        matched = False
        # No short-circuit: every candidate is compared with every secret, whatever matched.
        for candidate in candidates:
            for secret in self.secrets:
                matched |= hmac.compare_digest(candidate, secret)
        return matched

    def refusal(self, header_value: str | bytes | None) -> Refusal | None:
        """Return why a delivery carrying ``header_value`` in :attr:`header` is refused, or ``None``.

        :param header_value: The raw header value, or ``None`` when the header is absent.
        """
        if self.check(header_value):
            return None
        if self.settings_invalid:
            return Refusal.SETTINGS_INVALID
        if not self.secrets:
            return Refusal.NO_SECRET_CONFIGURED
        if header_value is None or not header_value.strip():
            return Refusal.SECRET_MISSING
        return Refusal.SECRET_WRONG


def parse_secrets(value: Any) -> list[str]:
    """Return the secrets named by a connection's ``webhook_secrets`` extra.

    :param value: A list of strings, or one string holding comma-separated secrets, or ``None``.
    :raises IterableConfigError: When the value is neither (the message does not contain the value).
    """
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise IterableConfigError(
            f"extra webhook_secrets must be a list of strings or a comma-separated string, "
            f"got {type(value).__name__}"
        )
    secrets = []
    for item in items:
        if not isinstance(item, str):
            raise IterableConfigError(f"extra webhook_secrets must hold strings, got {type(item).__name__}")
        item = item.strip()
        if item:
            secrets.append(item)
    return secrets


def auth_from_extra(extra: Mapping[str, Any]) -> WebhookAuth:
    """Build the :class:`WebhookAuth` of a connection from its extra, masking every secret.

    Each secret is registered with Airflow's secrets masker on its own (not only the joined
    string), so one of several rotated secrets showing up in a log line is masked too.

    :param extra: The connection's extra, deserialised.
    :raises IterableConfigError: When an extra has the wrong type.
    """
    from airflow.sdk.log import mask_secret

    raw = extra.get("webhook_secrets")
    if isinstance(raw, str) and raw.strip():
        mask_secret(raw)
    secrets = parse_secrets(raw)
    for secret in secrets:
        mask_secret(secret)
    header = extra.get("webhook_secret_header") or DEFAULT_SECRET_HEADER
    if not isinstance(header, str) or not header.strip():
        raise IterableConfigError("extra webhook_secret_header must be a header name")
    mode = extra.get("webhook_auth")
    allow_anonymous = isinstance(mode, str) and mode.strip().lower() == "none"
    return WebhookAuth(
        secrets=tuple(s.encode("utf-8") for s in secrets),
        header=header.strip(),
        allow_anonymous=allow_anonymous,
    )
