"""Exceptions raised by the Iterable provider.

Every exception the provider raises derives from :class:`IterableError`. Importing this module
imports nothing of Airflow, so the event queue, the receiver's writer process and the simulator
stay light; the exceptions that fail an Airflow task at once (``AirflowFailException``
subclasses) are in :mod:`airflow_provider_iterable.failures`.

None of them ever carries the API key: the hook builds their messages from the endpoint
template, the HTTP status and Iterable's own ``code``/``msg``, never from request headers.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "ConnectionLookupError",
    "IterableApiError",
    "IterableAuthError",
    "IterableConfigError",
    "IterableConnectionError",
    "IterableError",
    "IterableNotFoundError",
    "IterableOutcomeUnknownError",
    "IterableRateLimitError",
    "QueueUnavailableError",
    "StateUnavailableError",
    "WebhookRejectedError",
    "WriterProcessError",
]

# Iterable's ``params`` can be large (bulk answers list every failed e-mail); an exception
# message is read by a person in a task log, so keep it to a readable size.
_MAX_PARAMS_CHARS = 500


class IterableError(Exception):
    """Base class of every error raised by the Iterable provider."""


class IterableConfigError(IterableError, ValueError):
    """Raise when a connection, a setting or an argument is unusable (no API key, unknown region, ...).

    It is a :class:`ValueError` too, so callers that validate input generically catch it. In a
    task, operators and sensors raise it as
    :class:`~airflow_provider_iterable.failures.IterableArgumentError`, which fails the task at once.
    """


class IterableApiError(IterableError):
    """Raise when Iterable answers with an HTTP status that is not a success.

    :param status: the HTTP status code of the answer.
    :param endpoint: the endpoint as ``"METHOD /api/path-template"``, e.g.
        ``"POST /api/users/update"``.
    :param code: Iterable's ``code`` field (``"BadParams"``, ``"BadApiKey"``, ...), when the body
        was Iterable's JSON envelope.
    :param msg: Iterable's ``msg`` field, or a short excerpt of a non-JSON body.
    :param params: Iterable's ``params`` field, if any.
    :param retry_after: seconds the server asked the client to wait (``Retry-After``), if any.
    :param detail: an extra sentence appended to the message (what the caller can do about it).
    """

    def __init__(
        self,
        *,
        status: int,
        endpoint: str,
        code: str | None = None,
        msg: str | None = None,
        params: Any = None,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        self.status = status
        self.endpoint = endpoint
        self.code = code
        self.msg = msg
        self.params = params
        self.retry_after = retry_after
        self.detail = detail
        super().__init__(self._render())

    def _render(self) -> str:
        # Iterable's msg and params echo identifiers ("invalid email ...", a bulk answer's
        # failedUpdates): the attributes keep them for code, the message masks every address.
        text = f"Iterable answered HTTP {self.status} to {self.endpoint}"
        if self.code:
            text += f" (code {self.code})"
        if self.msg:
            text += f": {self.msg}"
        if self.params not in (None, {}, []):
            try:
                rendered = json.dumps(self.params, sort_keys=True, default=str)
            except (TypeError, ValueError):
                rendered = repr(self.params)
            # Masked before it is cut short, so no address is cut off before its "@".
            rendered = _mask_email_addresses(rendered)
            if len(rendered) > _MAX_PARAMS_CHARS:
                rendered = rendered[:_MAX_PARAMS_CHARS] + "..."
            text += f" [params: {rendered}]"
        if self.detail:
            text += f". {self.detail}"
        return _mask_email_addresses(text)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive the default Exception pickling, and Airflow
        # may pickle an exception across processes.
        return (
            _rebuild_api_error,
            (
                type(self),
                {
                    "status": self.status,
                    "endpoint": self.endpoint,
                    "code": self.code,
                    "msg": self.msg,
                    "params": self.params,
                    "retry_after": self.retry_after,
                    "detail": self.detail,
                },
            ),
        )


def _rebuild_api_error(cls: type[IterableApiError], kwargs: dict[str, Any]) -> IterableApiError:
    return cls(**kwargs)


class IterableAuthError(IterableApiError):
    """Raise when Iterable refuses the API key (401) or its permissions (403)."""


class IterableNotFoundError(IterableApiError):
    """Raise when Iterable answers 404."""


class IterableRateLimitError(IterableApiError):
    """Raise when Iterable still answers 429 after the retries, or asks to wait past the deadline."""


class IterableOutcomeUnknownError(IterableError):
    """Raise when a call that must not be repeated may or may not have reached Iterable.

    ``sms/target``, ``email/target``, ``workflows/triggerWorkflow``, ``POST lists`` and
    ``events/track`` without an ``id`` can send or create twice when repeated, so after a read
    timeout, a dropped connection or a 5xx the hook stops and says so instead of retrying; an
    operator turns it into a task failure without a retry, which would repeat it too.

    :param endpoint: the endpoint as ``"METHOD /api/path-template"``.
    :param reason: what happened (``"read timeout after 30 s"``, ``"HTTP 500"``, ...).
    :param status: the HTTP status when there was an answer, else ``None``.
    """

    def __init__(self, *, endpoint: str, reason: str, status: int | None = None) -> None:
        self.endpoint = endpoint
        self.reason = reason
        self.status = status
        super().__init__(
            f"{endpoint}: {reason}. The call may have been delivered to Iterable, and repeating "
            "it could send or create twice, so it was not retried. Check in Iterable whether it "
            "took effect before running it again."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_outcome_unknown, (self.endpoint, self.reason, self.status))


def _rebuild_outcome_unknown(endpoint: str, reason: str, status: int | None) -> IterableOutcomeUnknownError:
    return IterableOutcomeUnknownError(endpoint=endpoint, reason=reason, status=status)


class IterableConnectionError(IterableError):
    """Raise when Iterable could not be reached (or gave no answer) and the retries are exhausted.

    :param message: what happened, for a person.
    :param endpoint: the endpoint as ``"METHOD /api/path-template"``, when known.
    :param reason: a short description (``"connection refused"``, ``"read timeout after 30 s"``).
    :param retryable: whether another attempt could succeed (false for a bad TLS certificate).
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        reason: str | None = None,
        retryable: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.reason = reason
        self.retryable = retryable
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_connection_error, (str(self), self.endpoint, self.reason, self.retryable))


def _rebuild_connection_error(
    message: str, endpoint: str | None, reason: str | None, retryable: bool
) -> IterableConnectionError:
    return IterableConnectionError(message, endpoint=endpoint, reason=reason, retryable=retryable)


class QueueUnavailableError(IterableError):
    """The event queue cannot commit or read right now (locked, read-only, full, server down).

    Raised instead of the driver's or SQLAlchemy's own errors, so a caller needs to know one
    exception type: the receiver answers 503 with ``Retry-After``, a trigger retries its poll.
    Nothing was written when it is raised from a write.
    """


class WriterProcessError(IterableError):
    """The receiver's writer process could not store an event for a reason other than the store being down."""


class ConnectionLookupError(IterableError):
    """A webhook's connection could not be looked up right now; says nothing about whether it exists."""


class WebhookRejectedError(IterableError):
    """A webhook delivery refused with a 4xx.

    :param status: the HTTP status to answer.
    :param detail: a short fixed description; never contains data from the request.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.detail))


# The local part of anything written like an e-mail address: the characters before an "@", back
# to a space, quote, bracket, separator or slash. Valid or not (Iterable echoes invalid addresses
# too), what stands before an "@" identifies a person; the domain is kept, as it does not.
_EMAIL_LOCAL_PART = re.compile(r"[^\s@\"'<>()\[\]{},;:/\\]+(?=@)")


def _mask_email_addresses(text: str) -> str:
    """Return ``text`` with the local part of every e-mail address replaced by ``***``."""
    return _EMAIL_LOCAL_PART.sub("***", text)


class StateUnavailableError(IterableError):
    """The provider's state database (sync fingerprints, the runs table) cannot be read or written now.

    A later task try may well succeed (a restarting database, a lock held too long), so it is not
    an ``AirflowFailException``.
    """
