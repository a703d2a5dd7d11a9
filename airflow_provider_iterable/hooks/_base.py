"""The one request path under every method of :class:`~airflow_provider_iterable.hooks.iterable.IterableHook`.

Each area of Iterable's API (users, lists, events, messaging, ...) is a subclass of
:class:`IterableHookBase` in a module of its own, with one short public method per endpoint;
``IterableHook`` inherits them all. A method names its endpoint twice, on purpose: in the
:func:`endpoint` decorator, which is how the hook knows every endpoint it calls (the keys its
connection's ``rate_limits`` may name), and in its call of :meth:`IterableHookBase._call`, so the
URL is visible where it is used. A call of an endpoint that no method of the hook declares
fails at once, before any request.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import requests
from airflow.sdk import BaseHook
from requests.adapters import HTTPAdapter

from airflow_provider_iterable import __version__
from airflow_provider_iterable._values import is_whole_number
from airflow_provider_iterable.exceptions import IterableConfigError, IterableError
from airflow_provider_iterable.hooks._encoding import encode_body, path_segment
from airflow_provider_iterable.hooks._rate_limit import EndpointRateLimiter, limiter_for
from airflow_provider_iterable.hooks._retry import RetryController, is_idempotent
from airflow_provider_iterable.hooks._settings import HookSettings, load_settings, positive_seconds
from airflow_provider_iterable.hooks._transport import decode_answer, transport_error

__all__ = ["IterableHookBase", "endpoint"]

F = TypeVar("F", bound=Callable[..., Any])

_ENDPOINTS_ATTRIBUTE = "__iterable_endpoints__"
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
# An ``endpoint`` given to request() that starts with a method word is a whole key already.
_METHOD_WORD = re.compile(r"^[A-Z]+ ")


def endpoint(*keys: str) -> Callable[[F], F]:
    """Declare the endpoints a hook method calls, as ``"METHOD /api/path-template"``.

    The method itself is returned unchanged (same signature and docstring), marked with its keys.

    :param keys: one key per endpoint the method may call, e.g. ``"DELETE /api/users/{email}"``.
    """
    for key in keys:
        method, _, path = key.partition(" ")
        if method not in _METHODS or not path.startswith("/api/") or " " in path:
            raise IterableConfigError(f"endpoint key {key!r} is not of the form 'METHOD /api/path-template'")

    def mark(function: F) -> F:
        setattr(function, _ENDPOINTS_ATTRIBUTE, (*getattr(function, _ENDPOINTS_ATTRIBUTE, ()), *keys))
        return function

    return mark


class IterableHookBase(BaseHook):
    """Connection, session, pacing, retries and typed errors for every call to Iterable.

    Nothing is read or sent at construction: the connection is loaded on the first call.

    :param iterable_conn_id: the Airflow connection id.
    :param timeout: seconds to wait for an answer; overrides the connection's ``timeout`` extra.
    :param retry_deadline: total seconds one call may take with its retries.
    :param max_attempts: most attempts of one call.
    """

    #: Every endpoint key the methods of this class declare with :func:`endpoint`.
    endpoint_keys: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.endpoint_keys = frozenset(
            key
            for klass in cls.__mro__
            for member in vars(klass).values()
            for key in getattr(member, _ENDPOINTS_ATTRIBUTE, ())
        )

    def __init__(
        self, iterable_conn_id: str, *, timeout: float | None, retry_deadline: float, max_attempts: int
    ) -> None:
        super().__init__()
        if timeout is not None:
            timeout = positive_seconds(timeout, "timeout")
        self.iterable_conn_id = iterable_conn_id
        self.timeout = timeout
        self.retry_deadline = positive_seconds(retry_deadline, "retry_deadline")
        if not is_whole_number(max_attempts, minimum=1):
            raise IterableConfigError(f"max_attempts must be a whole number >= 1, got {max_attempts!r}")
        self.max_attempts = max_attempts
        self._init_lock = threading.Lock()
        self._settings: HookSettings | None = None
        self._session: requests.Session | None = None
        self._limiter: EndpointRateLimiter | None = None
        self._retry: RetryController | None = None

    # -- connection and session ---------------------------------------------------------------

    def _get_settings(self) -> HookSettings:
        if self._settings is None:
            with self._init_lock:
                if self._settings is None:
                    conn = self.get_connection(self.iterable_conn_id)
                    self._settings = load_settings(
                        conn,
                        conn_id=self.iterable_conn_id,
                        timeout=self.timeout,
                        endpoints=self.endpoint_keys,
                        log=self.log,
                    )
        return self._settings

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

    # -- requests -----------------------------------------------------------------------------

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
        if not isinstance(method, str) or not method.strip():
            raise IterableConfigError(f"request needs method as a string such as 'GET', got {method!r}")
        if not isinstance(path, str) or not path.startswith("/api/"):
            raise IterableConfigError(f"request needs a path starting with /api/, got {path!r}")
        method = method.upper()
        template = endpoint or path
        key = template if _METHOD_WORD.match(template) else f"{method} {template}"
        return self._send(method, path, key, params=params, body=json, idempotent=idempotent)

    def _call(
        self,
        endpoint: str,
        *,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        retry: RetryController | None = None,
    ) -> Any:
        """Call one endpoint a method of the hook declared; return the decoded JSON answer.

        :param endpoint: ``"METHOD /api/path-template"``, as declared with :func:`endpoint`.
        :param path: values of the template's ``{names}``, percent-encoded here.
        :param params: query parameters.
        :param body: the JSON body; ``None`` sends no body.
        :param retry: retry rules for this call instead of the hook's.
        """
        if endpoint not in self.endpoint_keys:
            raise IterableError(
                f"{endpoint} is declared with @endpoint by no method of {type(self).__name__}"
            )
        method, _, template = endpoint.partition(" ")
        url_path = (
            template.format_map({name: path_segment(value) for name, value in path.items()})
            if path
            else template
        )
        return self._send(method, url_path, endpoint, params=params, body=body, retry=retry)

    def _send(
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
            idempotent = is_idempotent(endpoint, body)
        data = encode_body(body) if body is not None else None
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
            failure = transport_error(exc, endpoint, idempotent, settings)
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
        return decode_answer(response, endpoint, idempotent, settings)


def _user_agent() -> str:
    try:
        from airflow import __version__ as airflow_version
    except ImportError:  # pragma: no cover - Airflow is a dependency
        airflow_version = "unknown"
    return (
        f"airflow-provider-iterable/{__version__} apache-airflow/{airflow_version} "
        f"python-requests/{requests.__version__}"
    )
