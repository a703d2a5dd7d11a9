"""Hook for Iterable's REST API: the only code in the provider that speaks to Iterable.

``IterableHook`` is composed of one class per area of Iterable's API, each in a module of its
own with one short method per endpoint over the one private request method of
:class:`~airflow_provider_iterable.hooks._base.IterableHookBase`:

- users (:mod:`~airflow_provider_iterable.hooks._users`),
- lists (:mod:`~airflow_provider_iterable.hooks._lists`),
- events (:mod:`~airflow_provider_iterable.hooks._events`),
- messaging: e-mail, SMS, channels, journeys (:mod:`~airflow_provider_iterable.hooks._messaging`).

To add an area, write a subclass of ``IterableHookBase`` whose methods declare their endpoints
with ``@endpoint("METHOD /api/path-template")`` and call ``self._call(...)`` with the same key,
and add it to ``IterableHook``'s bases; its endpoints then become valid ``rate_limits`` keys.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_provider_iterable.exceptions import (
    IterableApiError,
    IterableAuthError,
    IterableConfigError,
    IterableConnectionError,
    IterableError,
)
from airflow_provider_iterable.hooks._base import endpoint
from airflow_provider_iterable.hooks._events import EventsApi
from airflow_provider_iterable.hooks._lists import ListsApi
from airflow_provider_iterable.hooks._messaging import MessagingApi
from airflow_provider_iterable.hooks._retry import DEFAULT_MAX_ATTEMPTS, RetryController
from airflow_provider_iterable.hooks._transport import auth_hint
from airflow_provider_iterable.hooks._users import UsersApi

__all__ = ["IterableHook"]

# test_connection() runs behind a UI button: it answers within seconds rather than retrying for minutes.
TEST_CONNECTION_DEADLINE = 10.0


class IterableHook(UsersApi, ListsApi, EventsApi, MessagingApi):
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
        super().__init__(
            iterable_conn_id, timeout=timeout, retry_deadline=retry_deadline, max_attempts=max_attempts
        )

    @endpoint("GET /api/channels")
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
            answer = self._call("GET /api/channels", retry=quick)
        except AirflowNotFoundException:
            return False, f"Connection {self.iterable_conn_id!r} is not defined"
        except IterableConfigError as exc:
            return False, str(exc)
        except IterableAuthError as exc:
            return False, auth_hint(exc.status, self._get_settings(), code=exc.code)
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
