"""What one attempt's outcome means: a failure of ``requests`` classified, an answer decoded.

A failure without an answer either happened before anything was sent (safe to repeat on every
endpoint) or after the request may have reached Iterable (safe only where repeating cannot send
or create twice). An answer is a success on its HTTP status alone: Iterable answers some
failures with a 400 whose ``code`` is ``"Success"``, and some errors with HTML or plain text.
"""

from __future__ import annotations

import re
from typing import Any

import requests
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

from airflow_provider_iterable.exceptions import (
    IterableApiError,
    IterableAuthError,
    IterableConnectionError,
    IterableError,
    IterableNotFoundError,
    IterableOutcomeUnknownError,
    IterableRateLimitError,
)
from airflow_provider_iterable.hooks._redaction import redact_params, redact_text
from airflow_provider_iterable.hooks._retry import parse_retry_after
from airflow_provider_iterable.hooks._settings import HookSettings

__all__ = ["auth_hint", "decode_answer", "transport_error"]

_HTML_TAG = re.compile(r"<[^>]*>")
_MAX_EXCERPT_CHARS = 200
# Failures of requests that are raised while preparing a request, so nothing was sent.
_UNSENDABLE = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
)


def transport_error(
    exc: requests.RequestException, endpoint: str, idempotent: bool, settings: HookSettings
) -> IterableError:
    """Return the typed error of a failure without an HTTP answer.

    The result never links to ``exc``: a requests exception carries the prepared request, API
    key header included.

    :param exc: what ``requests`` raised.
    :param endpoint: the endpoint key, ``"METHOD /api/path-template"``.
    :param idempotent: whether repeating the call after it may have arrived is harmless.
    :param settings: the hook's settings (base URL and timeouts, for the message).
    :return: an :class:`IterableConnectionError` (retryable unless nothing could help), or an
        :class:`IterableOutcomeUnknownError` when the call may have been delivered and must not
        be repeated.
    """
    base = settings.base_url
    if isinstance(exc, requests.exceptions.SSLError):
        return IterableConnectionError(
            f"TLS handshake with {base} failed for {endpoint} ({type(exc).__name__}); check the "
            "host and the certificates",
            endpoint=endpoint,
            reason="TLS failure",
            retryable=False,
        )
    connect_reason = _connect_failure(exc, settings.connect_timeout)
    if connect_reason is not None:
        return IterableConnectionError(
            f"Could not connect to {base} for {endpoint}: {connect_reason}",
            endpoint=endpoint,
            reason=connect_reason,
        )
    if isinstance(exc, requests.exceptions.Timeout):
        reason = f"no answer within the read timeout of {settings.read_timeout:g} s"
    elif isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError):
        reason = "the connection dropped before a complete answer arrived"
    elif isinstance(exc, _UNSENDABLE) or idempotent:
        return IterableConnectionError(
            f"Request to {base} for {endpoint} failed: {type(exc).__name__}",
            endpoint=endpoint,
            reason=type(exc).__name__,
            retryable=False,
        )
    else:
        # Anything else (an undecodable answer, ...) may come after Iterable took the request.
        reason = f"the answer could not be read ({type(exc).__name__})"
    if not idempotent:
        return IterableOutcomeUnknownError(endpoint=endpoint, reason=reason)
    return IterableConnectionError(
        f"No answer from {base} for {endpoint}: {reason}", endpoint=endpoint, reason=reason
    )


def _connect_failure(exc: requests.RequestException, connect_timeout: float) -> str | None:
    """Return why no connection was made, or ``None`` if the request may have been sent."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"connect timeout after {connect_timeout:g} s"
    if isinstance(exc, requests.exceptions.ProxyError):
        return "the proxy refused the connection"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        if isinstance(reason, NameResolutionError):
            return "the host name could not be resolved"
        if isinstance(reason, NewConnectionError):
            # urllib3 raises it from the socket's own error, which says what happened by its type.
            if isinstance(reason.__cause__ or reason.__context__, ConnectionRefusedError):
                return "connection refused"
            return "the connection could not be established"
    return None


def decode_answer(
    response: requests.Response, endpoint: str, idempotent: bool, settings: HookSettings
) -> Any:
    """Return the JSON of a 2xx answer; raise the typed error of any other.

    :param response: Iterable's answer.
    :param endpoint: the endpoint key, ``"METHOD /api/path-template"``.
    :param idempotent: whether repeating the call is harmless (a 5xx or unreadable 2xx of a call
        that is not becomes :class:`IterableOutcomeUnknownError`).
    :param settings: the hook's settings (the API key is redacted from what is kept).
    :return: the decoded JSON (``{}`` for an empty 2xx body).
    """
    status = response.status_code
    payload = _json_or_none(response)
    if 200 <= status < 300:
        if payload is not None:
            return payload
        if not response.content.strip():
            return {}
        if not idempotent:
            # Accepted (2xx), but what was done cannot be read: repeating it could do it twice.
            raise IterableOutcomeUnknownError(
                endpoint=endpoint,
                reason=f"Iterable answered HTTP {status} with a body that is not JSON",
                status=status,
            )
        raise IterableApiError(
            status=status,
            endpoint=endpoint,
            msg=f"the answer is not JSON: {_excerpt(response, settings.api_key)}",
        )
    code = msg = params = None
    if isinstance(payload, dict):
        code = _str_or_none(payload.get("code"))
        msg = redact_text(_str_or_none(payload.get("msg")), settings.api_key)
        params = redact_params(payload.get("params"), settings.api_key)
    elif payload is None:
        msg = _excerpt(response, settings.api_key)
    if status >= 500 and not idempotent:
        described = f"Iterable answered HTTP {status}" + (f" ({code})" if code else "")
        raise IterableOutcomeUnknownError(endpoint=endpoint, reason=described, status=status)
    error_cls: type[IterableApiError] = IterableApiError
    detail = None
    if status in (401, 403):
        error_cls = IterableAuthError
        detail = auth_hint(status, settings, code=code)
    elif status == 404:
        error_cls = IterableNotFoundError
    elif status == 429:
        error_cls = IterableRateLimitError
    raise error_cls(
        status=status,
        endpoint=endpoint,
        code=code,
        msg=msg,
        params=params,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        detail=detail,
    )


def auth_hint(status: int, settings: HookSettings, code: str | None = None) -> str:
    """Return what a 401 or 403 means and what to check.

    The data center is suspected only where the key went to one of Iterable's: behind any other
    host (the simulator, a proxy) that advice would send the reader the wrong way.

    :param status: 401 (the key was refused) or 403 (the key may not make this call).
    :param settings: where the key was sent, and whether the connection's region or Host said so.
    :param code: Iterable's ``code``, if any (``"BadApiKey"``).
    """
    base_url = settings.base_url
    code_text = f" {code}" if code else ""
    if status == 403:
        return (
            f"Iterable at {base_url} accepted the API key but refused this call (HTTP 403{code_text}): "
            "the key's type lacks the permission; use a server-side key"
        )
    if settings.data_center is None:
        return (
            f"The API at {base_url} (the connection's Host) rejected the API key (HTTP 401{code_text}). "
            "Check the key, and that it is a key of the Iterable project, simulator or proxy at that host"
        )
    where = (
        f"the connection's Host points at the {settings.data_center.upper()} data center; check it, "
        "or clear it and set the region (us or eu)"
        if settings.from_host
        else "check the connection's region (us or eu)"
    )
    return (
        f"Iterable at {base_url} rejected the API key (HTTP 401{code_text}). Check the key; note that "
        "a key works only in its own data center, so a US project's key fails against the EU API "
        f"and vice versa: {where}"
    )


def _excerpt(response: requests.Response, api_key: str) -> str:
    """Return a short, readable excerpt of a non-JSON body (an HTML page becomes its text)."""
    text = _HTML_TAG.sub(" ", response.text or "")
    text = " ".join(text.split())
    if len(text) > _MAX_EXCERPT_CHARS:
        text = text[:_MAX_EXCERPT_CHARS] + "..."
    return redact_text(text, api_key) or "(empty body)"


def _json_or_none(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
