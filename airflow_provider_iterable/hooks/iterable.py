"""Hook for Iterable's REST API: the only code in the provider that speaks to Iterable."""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, cast
from urllib.parse import quote, urlsplit

import requests
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import mask_secret
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

from airflow_provider_iterable import __version__
from airflow_provider_iterable.exceptions import (
    IterableApiError,
    IterableAuthError,
    IterableConfigError,
    IterableConnectionError,
    IterableError,
    IterableNotFoundError,
    IterableOutcomeUnknownError,
    IterableRateLimitError,
)
from airflow_provider_iterable.hooks._rate_limit import EndpointRateLimiter, limiter_for, parse_rate_limits
from airflow_provider_iterable.hooks._retry import DEFAULT_MAX_ATTEMPTS, RetryController, parse_retry_after

__all__ = ["IterableHook"]

REGION_BASE_URLS: Mapping[str, str] = {
    "us": "https://api.iterable.com",
    "eu": "https://api.eu.iterable.com",
}
DEFAULT_TIMEOUT = 30.0
# Connecting is fast or it fails: no need to wait as long as for a slow bulk answer.
MAX_CONNECT_TIMEOUT = 10.0
# test_connection() runs behind a UI button: it answers within seconds rather than retrying for minutes.
TEST_CONNECTION_DEADLINE = 10.0

_API_KEY_PATTERN = re.compile(r"^[0-9a-f]{32}$")
_HTML_TAG = re.compile(r"<[^>]*>")
_SEND_AT_FORMAT = "%Y-%m-%d %H:%M:%S"

# POSTs whose repetition leaves Iterable as one call would (ITERABLE_API.md "Safe to retry").
_IDEMPOTENT_POSTS = frozenset(
    {
        "POST /api/users/update",
        "POST /api/users/bulkUpdate",
        "POST /api/users/updateSubscriptions",
        "POST /api/lists/subscribe",
        "POST /api/lists/unsubscribe",
    }
)
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "DELETE"})
_METHOD_WORD = re.compile(r"^[A-Z]+ ")
# Failures of requests that are raised while preparing a request, so nothing was sent.
_UNSENDABLE = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
)
# Iterable writes offsets with a space ("2026-11-27 03:05:00 +00:00"); ISO does not.
_SPACED_OFFSET = re.compile(r"\s+([+-]\d{2}:?\d{2})$")


@dataclass(frozen=True)
class _Settings:
    """What the hook reads from its Airflow connection, validated."""

    api_key: str
    base_url: str
    connect_timeout: float
    read_timeout: float
    rate_limits: dict[str, float | None]


class IterableHook(BaseHook):
    """Talk to Iterable's REST API with the API key of an Airflow connection.

    The connection's password is the API key; extra ``region`` (``us``, the default, or ``eu``)
    picks the data center, or the Host field (with its scheme) overrides it. Extra ``timeout``
    (seconds, default 30) bounds every request; extra ``rate_limits``
    (``{"METHOD /api/path-template": per_second}``) overrides the built-in pacing.

    Calls are paced per endpoint at Iterable's documented limits, shared by every hook of the
    connection in this process. A 429 is retried after ``Retry-After`` (or an exponential,
    jittered backoff); a failed connection is retried on every endpoint; a read timeout, dropped
    connection or 5xx is retried only where repeating cannot send or create twice, and raises
    :class:`~airflow_provider_iterable.exceptions.IterableOutcomeUnknownError` elsewhere.

    Nothing is read or sent at construction: the connection is loaded on the first call.

    :param iterable_conn_id: the Airflow connection id (default ``iterable_default``).
    :param timeout: seconds to wait for an answer; overrides the connection's ``timeout`` extra.
    :param retry_deadline: total seconds one call may take with its retries (default 120).
    :param max_attempts: most attempts of one call (default 10).
    """

    conn_name_attr = "iterable_conn_id"
    default_conn_name = "iterable_default"
    conn_type = "iterable"
    hook_name = "Iterable"

    def __init__(
        self,
        iterable_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        retry_deadline: float = 120.0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        super().__init__()
        if timeout is not None:
            timeout = _positive_seconds(timeout, "timeout")
        self.iterable_conn_id = iterable_conn_id
        self.timeout = timeout
        self.retry_deadline = _positive_seconds(retry_deadline, "retry_deadline")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise IterableConfigError(f"max_attempts must be a whole number >= 1, got {max_attempts!r}")
        self.max_attempts = max_attempts
        self._init_lock = threading.Lock()
        self._settings: _Settings | None = None
        self._session: requests.Session | None = None
        self._limiter: EndpointRateLimiter | None = None
        self._retry: RetryController | None = None

    # -- connection and session ---------------------------------------------------------------

    def _get_settings(self) -> _Settings:
        if self._settings is None:
            with self._init_lock:
                if self._settings is None:
                    self._settings = self._load_settings()
        return self._settings

    def _load_settings(self) -> _Settings:
        conn_id = self.iterable_conn_id
        conn = self.get_connection(conn_id)
        # Airflow turns an extra that is not JSON into {} (with a log line); parsing the raw text
        # again then says so, instead of quietly using the defaults (region us, no overrides).
        extra = _extras(conn.extra_dejson or conn.extra, conn_id)

        api_key = (conn.password or "").strip()
        if not api_key:
            raise IterableConfigError(
                f"Connection {conn_id!r} has no API key: put the Iterable API key in the "
                "connection's password field (API key)"
            )
        mask_secret(api_key)
        if not _API_KEY_PATTERN.match(api_key):
            self.log.warning(
                "The API key of connection %r does not look like an Iterable key (32 lower-case "
                "hexadecimal characters); check that it was copied whole, without spaces",
                conn_id,
            )

        base_url = _base_url(conn.host, conn.port, extra.get("region"), conn_id)

        timeout = self.timeout
        if timeout is None:
            raw_timeout = extra.get("timeout")
            timeout = (
                DEFAULT_TIMEOUT
                if raw_timeout in (None, "")
                else _positive_seconds(raw_timeout, f"connection {conn_id!r} extra 'timeout'")
            )
        rate_limits = parse_rate_limits(extra.get("rate_limits"), conn_id=conn_id)
        # ``webhook_*`` extras belong to the webhook receiver: not read here, and never logged.
        return _Settings(
            api_key=api_key,
            base_url=base_url,
            connect_timeout=min(timeout, MAX_CONNECT_TIMEOUT),
            read_timeout=timeout,
            rate_limits=rate_limits,
        )

    @property
    def base_url(self) -> str:
        """The API's base URL without a trailing slash, from the Host field or the region."""
        return self._get_settings().base_url

    @property
    def limiter(self) -> EndpointRateLimiter:
        """The connection's rate limiter, shared by every hook of the connection in this process."""
        if self._limiter is None:
            settings = self._get_settings()
            self._limiter = limiter_for(self.iterable_conn_id, settings.base_url, settings.rate_limits)
        return self._limiter

    @property
    def session(self) -> requests.Session:
        """The hook's HTTP session (created on first use), carrying the API key header."""
        if self._session is None:
            settings = self._get_settings()
            with self._init_lock:
                if self._session is None:
                    session = requests.Session()
                    # Several threads may share one hook; let each keep its own connection.
                    session.mount("http://", HTTPAdapter(pool_maxsize=32))
                    session.mount("https://", HTTPAdapter(pool_maxsize=32))
                    session.headers.update(
                        {
                            "Api-Key": settings.api_key,
                            "Accept": "application/json",
                            "User-Agent": _user_agent(),
                        }
                    )
                    self._session = session
        return self._session

    @property
    def _retry_controller(self) -> RetryController:
        # Built on first use, so ``retry_deadline`` and ``max_attempts`` may be set until then.
        if self._retry is None:
            self._retry = RetryController(
                deadline=self.retry_deadline, log=self.log, max_attempts=self.max_attempts
            )
        return self._retry

    def get_conn(self) -> requests.Session:
        """Return the HTTP session (Airflow's conventional name for a hook's client)."""
        return self.session

    def close(self) -> None:
        """Close the HTTP session; the next call opens a new one."""
        with self._init_lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    # -- the one request method ---------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        endpoint: str | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Call any Iterable endpoint with pacing, retries and typed errors; return the parsed JSON.

        :param method: the HTTP method (``"GET"``, ``"POST"``, ...).
        :param path: the path, starting with ``/api/``; path parameters already percent-encoded.
        :param params: query parameters.
        :param json: the JSON body; ``None`` sends no body.
        :param endpoint: the endpoint's path template (``"/api/users/{email}"``) or its full key
            (``"DELETE /api/users/{email}"``), used for the rate limit and in messages; defaults to
            ``path``.
        :param idempotent: whether repeating the call after a read timeout or 5xx is harmless;
            by default decided from the endpoint (every GET, ``users/update``, ...).
        :return: the decoded JSON answer (``{}`` for an empty 2xx body).

        .. seealso:: https://api.iterable.com/api/docs
        """
        if not path.startswith("/api/"):
            raise IterableConfigError(f"request needs a path starting with /api/, got {path!r}")
        method = method.upper()
        template = endpoint or path
        key = template if _METHOD_WORD.match(template) else f"{method} {template}"
        return self._request(method, path, key, params=params, body=json, idempotent=idempotent)

    def _request(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotent: bool | None = None,
        retry: RetryController | None = None,
    ) -> Any:
        settings = self._get_settings()
        if idempotent is None:
            idempotent = _is_idempotent(endpoint, body)
        data = _encode_body(body) if body is not None else None
        return (retry or self._retry_controller).call(
            self._attempt, method, settings.base_url + path, endpoint, params, data, idempotent
        )

    def _attempt(
        self,
        method: str,
        url: str,
        endpoint: str,
        params: Mapping[str, Any] | None,
        data: bytes | None,
        idempotent: bool,
    ) -> Any:
        settings = self._get_settings()
        self.limiter.acquire(endpoint)
        headers = {"Content-Type": "application/json"} if data is not None else None
        started = time.monotonic()
        failure: IterableError | None = None
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                timeout=(settings.connect_timeout, settings.read_timeout),
                # Iterable does not redirect; following one would send the Api-Key header (which
                # requests, unlike Authorization, keeps across hosts) to wherever it points.
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            failure = self._transport_error(exc, endpoint, idempotent)
        if failure is not None:
            # Raised outside the ``except`` on purpose: a requests exception carries the prepared
            # request, API key header included, and must not travel on as __cause__/__context__.
            raise failure
        self.log.debug(
            "Iterable %s answered HTTP %d in %.1f ms",
            endpoint,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return self._decode(response, endpoint, idempotent)

    def _transport_error(
        self, exc: requests.RequestException, endpoint: str, idempotent: bool
    ) -> IterableError:
        """Classify a failure without an HTTP answer: before sending (safe) or after (maybe delivered)."""
        settings = self._get_settings()
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
        elif isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
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

    def _decode(self, response: requests.Response, endpoint: str, idempotent: bool) -> Any:
        """Return the JSON of a 2xx answer; raise the typed error of any other.

        Success is decided on the HTTP status: Iterable answers some failures with a 400 whose
        ``code`` is ``"Success"``, and some errors with HTML or plain text.
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
                msg=f"the answer is not JSON: {self._excerpt(response)}",
            )
        code = msg = params = None
        if isinstance(payload, dict):
            code = _str_or_none(payload.get("code"))
            msg = self._redact(_str_or_none(payload.get("msg")))
            params = self._redact_params(payload.get("params"))
        elif payload is None:
            msg = self._excerpt(response)
        if status >= 500 and not idempotent:
            described = f"Iterable answered HTTP {status}" + (f" ({code})" if code else "")
            raise IterableOutcomeUnknownError(endpoint=endpoint, reason=described, status=status)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        error_cls: type[IterableApiError] = IterableApiError
        detail = None
        if status in (401, 403):
            error_cls = IterableAuthError
            detail = _auth_hint(status, self._get_settings().base_url, code=code)
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
            retry_after=retry_after,
            detail=detail,
        )

    def _excerpt(self, response: requests.Response) -> str:
        """Return a short, readable excerpt of a non-JSON body (an HTML page becomes its text)."""
        text = _HTML_TAG.sub(" ", response.text or "")
        text = " ".join(text.split())
        if len(text) > 200:
            text = text[:200] + "..."
        return self._redact(text) or "(empty body)"

    def _redact_params(self, params: Any) -> Any:
        # As _redact, for the structured ``params`` an exception renders into its message.
        settings = self._settings
        if params is None or settings is None:
            return params
        text = json.dumps(params, default=str)
        if settings.api_key not in text:
            return params
        return json.loads(text.replace(settings.api_key, "***"))

    def _redact(self, text: str | None) -> str | None:
        # Defence in depth: should a server ever echo the key, it still never reaches an exception.
        settings = self._settings
        if text and settings is not None and settings.api_key in text:
            return text.replace(settings.api_key, "***")
        return text

    # -- users --------------------------------------------------------------------------------

    def upsert_user(
        self,
        *,
        email: str | None = None,
        user_id: str | None = None,
        data_fields: Mapping[str, Any] | None = None,
        prefer_user_id: bool | None = None,
        merge_nested_objects: bool | None = None,
        create_new_fields: bool | None = None,
    ) -> dict[str, Any]:
        """Create or update a user profile (``POST /api/users/update``).

        :param email: the user's e-mail address; ``email`` or ``user_id`` is required.
        :param user_id: the user's userId.
        :param data_fields: profile fields to merge into the profile.
        :param prefer_user_id: create a new user when ``user_id`` is unknown (userID-based projects).
        :param merge_nested_objects: merge nested objects instead of replacing them.
        :param create_new_fields: whether fields new to the project are added to its schema.
        :return: Iterable's envelope ``{"msg", "code", "params"}``.

        .. seealso:: https://api.iterable.com/api/docs#users_updateUser
        """
        _require_identity("upsert_user", email=email, user_id=user_id)
        body = _compact(
            {
                "email": email,
                "userId": user_id,
                "dataFields": data_fields,
                "preferUserId": prefer_user_id,
                "mergeNestedObjects": merge_nested_objects,
                "createNewFields": create_new_fields,
            }
        )
        return _dict(self._request("POST", "/api/users/update", "POST /api/users/update", body=body))

    def bulk_update_users(
        self, users: Sequence[Mapping[str, Any]], *, create_new_fields: bool | None = None
    ) -> dict[str, Any]:
        """Create or update many users in one call (``POST /api/users/bulkUpdate``).

        :param users: users in Iterable's shape, ``{"email" or "userId", "dataFields", ...}``.
        :param create_new_fields: whether fields new to the project are added to its schema.
        :return: Iterable's bulk answer (``successCount``, ``failCount``, ``failedUpdates``, ...).

        .. seealso:: https://api.iterable.com/api/docs#users_bulkUpdateUser
        """
        body = _compact({"users": list(users), "createNewFields": create_new_fields})
        return _dict(self._request("POST", "/api/users/bulkUpdate", "POST /api/users/bulkUpdate", body=body))

    def get_user_by_email(self, email: str) -> dict[str, Any] | None:
        """Return a user's profile by e-mail address (``GET /api/users/getByEmail?email=``).

        :param email: the user's e-mail address.
        :return: the user dict (``email``, ``userId``, ``dataFields``, ...), or ``None`` when unknown.

        .. seealso:: https://api.iterable.com/api/docs#users_getUser
        """
        _require_text("get_user_by_email", "email", email)
        answer = self._request(
            "GET", "/api/users/getByEmail", "GET /api/users/getByEmail", params={"email": email}
        )
        return _user_or_none(answer)

    def get_user_by_id(self, user_id: str) -> dict[str, Any] | None:
        """Return a user's profile by userId (``GET /api/users/byUserId?userId=``).

        :param user_id: the user's userId.
        :return: the user dict, or ``None`` when unknown.

        .. seealso:: https://api.iterable.com/api/docs#users_getUserById
        """
        _require_text("get_user_by_id", "user_id", user_id)
        answer = self._request(
            "GET", "/api/users/byUserId", "GET /api/users/byUserId", params={"userId": user_id}
        )
        return _user_or_none(answer)

    def update_subscriptions(
        self,
        *,
        email: str | None = None,
        user_id: str | None = None,
        email_list_ids: Sequence[int] | None = None,
        unsubscribed_channel_ids: Sequence[int] | None = None,
        unsubscribed_message_type_ids: Sequence[int] | None = None,
        subscribed_message_type_ids: Sequence[int] | None = None,
        campaign_id: int | None = None,
        template_id: int | None = None,
        validate_channel_alignment: bool | None = None,
    ) -> dict[str, Any]:
        """Set a user's subscriptions (``POST /api/users/updateSubscriptions``).

        Iterable **replaces** every field it is given (``email_list_ids=[5]`` leaves the user on
        list 5 only), so only the arguments that are not ``None`` are sent.

        :param email: the user's e-mail address; ``email`` or ``user_id`` is required.
        :param user_id: the user's userId.
        :param email_list_ids: the lists the user is on afterwards.
        :param unsubscribed_channel_ids: the channels the user is unsubscribed from afterwards.
        :param unsubscribed_message_type_ids: the message types the user is unsubscribed from.
        :param subscribed_message_type_ids: the message types the user is subscribed to (opt-in types).
        :param campaign_id: campaign to attribute unsubscribes to.
        :param template_id: template to attribute unsubscribes to.
        :param validate_channel_alignment: ``False`` allows message types of other channels.
        :return: Iterable's envelope.

        .. seealso:: https://api.iterable.com/api/docs#users_updateSubscriptions
        """
        _require_identity("update_subscriptions", email=email, user_id=user_id)
        body = _compact(
            {
                "email": email,
                "userId": user_id,
                "emailListIds": _list_or_none(email_list_ids),
                "unsubscribedChannelIds": _list_or_none(unsubscribed_channel_ids),
                "unsubscribedMessageTypeIds": _list_or_none(unsubscribed_message_type_ids),
                "subscribedMessageTypeIds": _list_or_none(subscribed_message_type_ids),
                "campaignId": campaign_id,
                "templateId": template_id,
                "validateChannelAlignment": validate_channel_alignment,
            }
        )
        return _dict(
            self._request(
                "POST", "/api/users/updateSubscriptions", "POST /api/users/updateSubscriptions", body=body
            )
        )

    def delete_user(self, *, email: str | None = None, user_id: str | None = None) -> dict[str, Any]:
        """Delete a user (``DELETE /api/users/{email}`` or ``DELETE /api/users/byUserId/{userId}``).

        Iterable deletes asynchronously: the profile may still be readable for a short while.

        :param email: the user's e-mail address; exactly one of ``email`` and ``user_id``.
        :param user_id: the user's userId.
        :return: Iterable's envelope.

        .. seealso:: https://api.iterable.com/api/docs#users_delete
        """
        if _blank(email) == _blank(user_id):
            raise IterableConfigError("delete_user needs exactly one of email or user_id")
        if email and email.strip():
            path = f"/api/users/{_path_segment(email)}"
            return _dict(self._request("DELETE", path, "DELETE /api/users/{email}"))
        path = f"/api/users/byUserId/{_path_segment(cast(str, user_id))}"
        return _dict(self._request("DELETE", path, "DELETE /api/users/byUserId/{userId}"))

    # -- lists --------------------------------------------------------------------------------

    def create_list(self, name: str, description: str | None = None) -> int:
        """Create a static list (``POST /api/lists``) and return its id.

        Not retried after a read timeout or 5xx: a repeat could create a second list.

        :param name: the list's name.
        :param description: the list's description.
        :return: the new list's id.

        .. seealso:: https://api.iterable.com/api/docs#lists_create
        """
        _require_text("create_list", "name", name)
        body = _compact({"name": name, "description": description})
        answer = _dict(self._request("POST", "/api/lists", "POST /api/lists", body=body))
        try:
            return int(answer["listId"])
        except (KeyError, TypeError, ValueError):
            # The list was most likely created: creating again would make a second one.
            raise IterableOutcomeUnknownError(
                endpoint="POST /api/lists", reason="Iterable answered without a listId", status=200
            ) from None

    def get_lists(self) -> list[dict[str, Any]]:
        """Return the project's lists (``GET /api/lists``).

        :return: ``[{"id", "name", "description", "createdAt", "listType"}, ...]``.

        .. seealso:: https://api.iterable.com/api/docs#lists_getLists
        """
        answer = _dict(self._request("GET", "/api/lists", "GET /api/lists"))
        return list(answer.get("lists") or [])

    def subscribe_to_list(
        self,
        list_id: int,
        subscribers: Sequence[Mapping[str, Any]],
        *,
        update_existing_users_only: bool | None = None,
    ) -> dict[str, Any]:
        """Add users to a static list (``POST /api/lists/subscribe``).

        :param list_id: the list's id.
        :param subscribers: users in Iterable's shape, ``{"email" or "userId", "dataFields", ...}``.
        :param update_existing_users_only: skip users that do not exist yet instead of creating them.
        :return: Iterable's bulk answer (``successCount``, ``failCount``, ``failedUpdates``).

        .. seealso:: https://api.iterable.com/api/docs#lists_subscribe
        """
        body = _compact(
            {
                "listId": list_id,
                "subscribers": list(subscribers),
                "updateExistingUsersOnly": update_existing_users_only,
            }
        )
        return _dict(self._request("POST", "/api/lists/subscribe", "POST /api/lists/subscribe", body=body))

    def unsubscribe_from_list(
        self,
        list_id: int,
        subscribers: Sequence[Mapping[str, Any]],
        *,
        campaign_id: int | None = None,
        channel_unsubscribe: bool | None = None,
    ) -> dict[str, Any]:
        """Remove users from a static list (``POST /api/lists/unsubscribe``).

        :param list_id: the list's id.
        :param subscribers: users in Iterable's shape, ``{"email" or "userId"}``.
        :param campaign_id: campaign to attribute the unsubscribes to.
        :param channel_unsubscribe: also unsubscribe them from the list's channel (a global unsubscribe).
        :return: Iterable's bulk answer.

        .. seealso:: https://api.iterable.com/api/docs#lists_unsubscribe
        """
        body = _compact(
            {
                "listId": list_id,
                "subscribers": list(subscribers),
                "campaignId": campaign_id,
                "channelUnsubscribe": channel_unsubscribe,
            }
        )
        return _dict(
            self._request("POST", "/api/lists/unsubscribe", "POST /api/lists/unsubscribe", body=body)
        )

    # -- events -------------------------------------------------------------------------------

    def track_event(
        self,
        *,
        event_name: str,
        email: str | None = None,
        user_id: str | None = None,
        event_id: str | None = None,
        created_at: datetime | float | None = None,
        data_fields: Mapping[str, Any] | None = None,
        campaign_id: int | None = None,
        template_id: int | None = None,
        create_new_fields: bool | None = None,
    ) -> dict[str, Any]:
        """Track a custom event (``POST /api/events/track``).

        With an ``event_id`` a repeat updates the same event, so the call is retried after a read
        timeout or 5xx; without one a repeat would record the event twice, so it is not.

        :param event_name: the event's name.
        :param email: the user's e-mail address; ``email`` or ``user_id`` is required.
        :param user_id: the user's userId.
        :param event_id: the event's id (at most 512 bytes); the same id updates the event.
        :param created_at: when it happened: a datetime (naive means UTC) or Unix seconds.
        :param data_fields: the event's fields.
        :param campaign_id: campaign the event is attributed to.
        :param template_id: template the event is attributed to.
        :param create_new_fields: whether fields new to the project are added to its schema.
        :return: Iterable's envelope (``params.id`` holds the event id).

        .. seealso:: https://api.iterable.com/api/docs#events_track
        """
        _require_text("track_event", "event_name", event_name)
        _require_identity("track_event", email=email, user_id=user_id)
        body = _compact(
            {
                "eventName": event_name,
                "email": email,
                "userId": user_id,
                "id": event_id,
                "createdAt": _epoch_seconds(created_at) if created_at is not None else None,
                "dataFields": data_fields,
                "campaignId": campaign_id,
                "templateId": template_id,
                "createNewFields": create_new_fields,
            }
        )
        return _dict(self._request("POST", "/api/events/track", "POST /api/events/track", body=body))

    def track_events(self, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Track many events in one call (``POST /api/events/trackBulk``).

        Retried after a read timeout or 5xx only when every event carries an ``id``.

        :param events: events in Iterable's shape, ``{"eventName", "email" or "userId", "id", ...}``.
        :return: Iterable's bulk answer (plus ``disallowedEventNames``).

        .. seealso:: https://api.iterable.com/api/docs#events_trackBulk
        """
        body = {"events": list(events)}
        return _dict(self._request("POST", "/api/events/trackBulk", "POST /api/events/trackBulk", body=body))

    # -- messaging ----------------------------------------------------------------------------

    def send_sms(
        self,
        *,
        campaign_id: int,
        recipient_email: str | None = None,
        recipient_user_id: str | None = None,
        data_fields: Mapping[str, Any] | None = None,
        send_at: datetime | str | None = None,
        allow_repeat_marketing_sends: bool | None = None,
    ) -> dict[str, Any]:
        """Send an SMS campaign to one user (``POST /api/sms/target``).

        Never retried after a read timeout or 5xx: a repeat could send a second SMS.

        :param campaign_id: the SMS campaign's id.
        :param recipient_email: the user's e-mail address; this or ``recipient_user_id`` is required.
        :param recipient_user_id: the user's userId.
        :param data_fields: fields merged into the template.
        :param send_at: when to send: a datetime (naive means UTC) or a date-time string; sent as
            ``"YYYY-MM-DD HH:MM:SS"`` UTC.
        :param allow_repeat_marketing_sends: allow sending a marketing message again to this user.
        :return: Iterable's envelope.

        .. seealso:: https://api.iterable.com/api/docs#SMS_target
        """
        return self._send_target(
            "/api/sms/target",
            "send_sms",
            campaign_id=campaign_id,
            recipient_email=recipient_email,
            recipient_user_id=recipient_user_id,
            data_fields=data_fields,
            send_at=send_at,
            allow_repeat_marketing_sends=allow_repeat_marketing_sends,
        )

    def send_email(
        self,
        *,
        campaign_id: int,
        recipient_email: str | None = None,
        recipient_user_id: str | None = None,
        data_fields: Mapping[str, Any] | None = None,
        send_at: datetime | str | None = None,
        allow_repeat_marketing_sends: bool | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send an e-mail campaign to one user (``POST /api/email/target``).

        Never retried after a read timeout or 5xx: a repeat could send a second e-mail.

        :param campaign_id: the e-mail campaign's id.
        :param recipient_email: the user's e-mail address; this or ``recipient_user_id`` is required.
        :param recipient_user_id: the user's userId.
        :param data_fields: fields merged into the template.
        :param send_at: when to send: a datetime (naive means UTC) or a date-time string; sent as
            ``"YYYY-MM-DD HH:MM:SS"`` UTC.
        :param allow_repeat_marketing_sends: allow sending a marketing message again to this user.
        :param metadata: data echoed back in the send's system webhooks, not used for rendering.
        :return: Iterable's envelope.

        .. seealso:: https://api.iterable.com/api/docs#email_target
        """
        return self._send_target(
            "/api/email/target",
            "send_email",
            campaign_id=campaign_id,
            recipient_email=recipient_email,
            recipient_user_id=recipient_user_id,
            data_fields=data_fields,
            send_at=send_at,
            allow_repeat_marketing_sends=allow_repeat_marketing_sends,
            metadata=metadata,
        )

    def _send_target(
        self,
        path: str,
        method_name: str,
        *,
        campaign_id: int,
        recipient_email: str | None,
        recipient_user_id: str | None,
        data_fields: Mapping[str, Any] | None,
        send_at: datetime | str | None,
        allow_repeat_marketing_sends: bool | None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        # sms/target and email/target take the same body (e-mail adds ``metadata``).
        _require_identity(method_name, recipient_email=recipient_email, recipient_user_id=recipient_user_id)
        body = _compact(
            {
                "campaignId": campaign_id,
                "recipientEmail": recipient_email,
                "recipientUserId": recipient_user_id,
                "dataFields": data_fields,
                "sendAt": _send_at(send_at) if send_at is not None else None,
                "allowRepeatMarketingSends": allow_repeat_marketing_sends,
                "metadata": metadata,
            }
        )
        return _dict(self._request("POST", path, f"POST {path}", body=body))

    def get_channels(self) -> list[dict[str, Any]]:
        """Return the project's channels (``GET /api/channels``).

        :return: ``[{"id", "name", "channelType", "messageMedium"}, ...]``.

        .. seealso:: https://api.iterable.com/api/docs#channels_channels
        """
        answer = _dict(self._request("GET", "/api/channels", "GET /api/channels"))
        return list(answer.get("channels") or [])

    def trigger_workflow(
        self,
        *,
        workflow_id: int,
        email: str | None = None,
        user_id: str | None = None,
        list_id: int | None = None,
        data_fields: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a journey for a user or a list (``POST /api/workflows/triggerWorkflow``).

        Never retried after a read timeout or 5xx: a repeat could start the journey twice.

        :param workflow_id: the journey's id (the number in the journey editor's URL).
        :param email: the user's e-mail address; ``email``, ``user_id`` or ``list_id`` is required.
        :param user_id: the user's userId.
        :param list_id: start the journey for every user on this list.
        :param data_fields: trigger data available to the journey.
        :return: Iterable's envelope.

        .. seealso:: https://api.iterable.com/api/docs#workflows_triggerWorkflow
        """
        _require_identity("trigger_workflow", email=email, user_id=user_id, list_id=list_id)
        body = _compact(
            {
                "workflowId": workflow_id,
                "email": email,
                "userId": user_id,
                "listId": list_id,
                "dataFields": data_fields,
            }
        )
        return _dict(
            self._request(
                "POST", "/api/workflows/triggerWorkflow", "POST /api/workflows/triggerWorkflow", body=body
            )
        )

    # -- connection test ----------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection with ``GET /api/channels`` (a read-only key may call it too).

        :return: ``(True, message)`` on success, else ``(False, what is wrong)``.

        .. seealso:: https://api.iterable.com/api/docs#channels_channels
        """
        try:
            settings = self._get_settings()
            quick = RetryController(
                deadline=min(self.retry_deadline, TEST_CONNECTION_DEADLINE),
                log=self.log,
                max_attempts=self.max_attempts,
            )
            answer = self._request("GET", "/api/channels", "GET /api/channels", retry=quick)
        except AirflowNotFoundException:
            return False, f"Connection {self.iterable_conn_id!r} is not defined"
        except IterableConfigError as exc:
            return False, str(exc)
        except IterableAuthError as exc:
            return False, _auth_hint(exc.status, self._get_settings().base_url, code=exc.code)
        except IterableConnectionError as exc:
            return False, (
                f"Could not reach Iterable at {self._get_settings().base_url}: {exc.reason or exc}. "
                "Check the connection's host or region, and that this machine can reach it."
            )
        except IterableApiError as exc:
            return False, f"Iterable answered the connection test with an error: {exc}"
        except IterableError as exc:
            return False, str(exc)
        channels = answer.get("channels") if isinstance(answer, dict) else None
        count = f" ({len(channels)} channels)" if isinstance(channels, list) else ""
        return True, f"Connected to Iterable at {settings.base_url}{count}; the API key was accepted."


# -- module functions ------------------------------------------------------------------------


def _user_agent() -> str:
    try:
        from airflow import __version__ as airflow_version
    except ImportError:  # pragma: no cover - Airflow is a dependency
        airflow_version = "unknown"
    return (
        f"airflow-provider-iterable/{__version__} apache-airflow/{airflow_version} "
        f"python-requests/{requests.__version__}"
    )


def _extras(raw: Any, conn_id: str) -> dict[str, Any]:
    """Return the connection's extras as a dict, whether they came as a dict or a JSON string."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise IterableConfigError(f"Connection {conn_id!r}: the extra field is not valid JSON") from None
    if not isinstance(raw, Mapping):
        raise IterableConfigError(f"Connection {conn_id!r}: the extra field must be a JSON object")
    return dict(raw)


def _base_url(host: str | None, port: int | None, region: Any, conn_id: str) -> str:
    """Return the API base URL: the Host field when set, else the region's URL."""
    if host and host.strip():
        host = host.strip().rstrip("/")
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


def _positive_seconds(value: Any, name: str) -> float:
    if not isinstance(value, bool):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        if math.isfinite(seconds) and seconds > 0:
            return seconds
    raise IterableConfigError(f"{name} must be a positive, finite number of seconds, got {value!r}")


def _auth_hint(status: int, base_url: str, code: str | None = None) -> str:
    if status == 403:
        return (
            f"Iterable at {base_url} accepted the API key but refused this call (HTTP 403"
            f"{' ' + code if code else ''}): the key's type lacks the permission; use a server-side key"
        )
    return (
        f"Iterable at {base_url} rejected the API key (HTTP 401{' ' + code if code else ''}). Check "
        "the key; note that a key works only in its own data center, so a US project's key fails "
        "against the EU API and vice versa: check the connection's region (us or eu)"
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
            text = str(reason).lower()
            if "refused" in text:
                return "connection refused"
            return "the connection could not be established"
    return None


def _is_idempotent(endpoint: str, body: Any) -> bool:
    """Return whether repeating a call that may have arrived leaves Iterable as one call would."""
    method = endpoint.split(" ", 1)[0]
    if method in _IDEMPOTENT_METHODS or endpoint in _IDEMPOTENT_POSTS:
        return True
    if endpoint == "POST /api/events/track":
        return isinstance(body, Mapping) and _has_event_id(body)
    if endpoint == "POST /api/events/trackBulk":
        events = body.get("events") if isinstance(body, Mapping) else None
        if not isinstance(events, Sequence) or not events:
            return False
        return all(isinstance(event, Mapping) and _has_event_id(event) for event in events)
    return False


def _has_event_id(event: Mapping[str, Any]) -> bool:
    value = event.get("id")
    return value is not None and str(value) != ""


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        # Iterable's date format; naive datetimes are taken as UTC.
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S +00:00")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} cannot be sent to Iterable as JSON")


def _encode_body(body: Any) -> bytes:
    try:
        return json.dumps(body, default=_json_default, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise IterableConfigError(f"The request body cannot be encoded as JSON: {exc}") from None


def _json_or_none(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _compact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values: an absent field keeps Iterable's default, ``null`` might not."""
    return {key: value for key, value in fields.items() if value is not None}


def _list_or_none(values: Sequence[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


def _dict(answer: Any) -> dict[str, Any]:
    return answer if isinstance(answer, dict) else {"result": answer}


def _user_or_none(answer: Any) -> dict[str, Any] | None:
    # Iterable answers an unknown user with 200 and ``{}`` or an empty ``user``.
    if not isinstance(answer, dict):
        return None
    user = answer.get("user")
    return user if isinstance(user, dict) and user else None


def _require_text(method: str, name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise IterableConfigError(f"{method} needs {name} as a non-empty string, got {value!r}")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _require_identity(method: str, **candidates: Any) -> None:
    if all(_blank(value) for value in candidates.values()):
        names = list(candidates)
        wanted = " or ".join(names) if len(names) == 2 else ", ".join(names[:-1]) + f" or {names[-1]}"
        raise IterableConfigError(f"{method} needs {wanted}")


def _path_segment(value: str) -> str:
    # Percent-encode everything that is not plainly safe: "+" must become %2B, or Iterable reads
    # it as a space; "/" must not split the path.
    return quote(value, safe="@")


def _epoch_seconds(value: datetime | float) -> int:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(aware.timestamp())
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise IterableConfigError(f"created_at must be a datetime or Unix seconds (a number), got {value!r}")
    return int(value)


def _send_at(value: datetime | str) -> str:
    if isinstance(value, str):
        text = value.strip()
        text = _SPACED_OFFSET.sub(r"\1", text)
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise IterableConfigError(
                f"send_at must be a datetime or a date-time string like '2026-12-01 09:30:00' (UTC), "
                f"got {value!r}"
            ) from None
        value = parsed
    if not isinstance(value, datetime):
        raise IterableConfigError(f"send_at must be a datetime or a string, got {value!r}")
    aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc).strftime(_SEND_AT_FORMAT)
