"""The webhook receiver as an ASGI app: routes, error handlers and lifespan around a :class:`Receiver`.

The app reads the request itself (plain Starlette routes, no pydantic models), so FastAPI's 422
never happens, and every refusal is a small JSON body with a fixed text that never echoes the
request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_iterable.webhooks.receiver import Receiver
from airflow_provider_iterable.webhooks.responses import error_response
from airflow_provider_iterable.webhooks.settings import ReceiverSettings

JOURNEY_METHODS = ["POST", "PUT", "PATCH", "GET", "DELETE"]


def create_app(settings: ReceiverSettings | None = None, /, **overrides: Any) -> FastAPI:
    """Return the webhook receiver as a FastAPI (ASGI) app.

    Called with no arguments it reads the ``[iterable]`` configuration section, so
    ``uvicorn --factory airflow_provider_iterable.webhooks:create_app`` serves it; keyword
    arguments override single settings (their names and meanings:
    :class:`~airflow_provider_iterable.webhooks.settings.ReceiverSettings`), e.g.
    ``create_app(queue_url="sqlite:////tmp/q.db", max_body_bytes=8192)``. Building the app does
    no I/O: the configuration is read and the queue opened at start-up or on the first request.

    :param settings: Settings to start from (default: every default).
    :param overrides: Settings to change, by name.
    :raises IterableConfigError: For an unknown setting or a bad value, naming it.
    """
    receiver = Receiver(ReceiverSettings.from_overrides(settings, overrides))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        receiver.start()
        try:
            yield
        finally:
            # Commit what is pending before the process goes (a graceful stop loses nothing).
            await receiver.astop()

    app = FastAPI(
        title="Iterable webhooks",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.receiver = receiver

    async def http_error(request: Request, exc: Exception) -> Response:
        # 404 for unknown paths and 405 for a wrong method, as JSON, with Starlette's Allow header.
        assert isinstance(exc, StarletteHTTPException)
        detail = {404: "not found", 405: "method not allowed"}.get(exc.status_code, "request refused")
        return error_response(exc.status_code, detail, dict(exc.headers or {}))

    async def bad_request(request: Request, exc: Exception) -> Response:
        return error_response(400, "malformed request")

    app.add_exception_handler(StarletteHTTPException, http_error)
    # Only reachable if some FastAPI machinery validated something; never answer its 422.
    app.add_exception_handler(RequestValidationError, bad_request)

    # Plain Starlette routes: no dependency injection or body models, nothing to validate.
    app.add_route("/health", receiver.health, methods=["GET"], include_in_schema=False)
    app.add_route("/webhooks/{conn_id}/system", receiver.system, methods=["POST"], include_in_schema=False)
    app.add_route(
        "/webhooks/{conn_id}/journeys/{workflow_id}",
        receiver.journey,
        methods=JOURNEY_METHODS,
        include_in_schema=False,
    )
    app.add_route(
        "/webhooks/{conn_id}/journeys", receiver.journey, methods=JOURNEY_METHODS, include_in_schema=False
    )
    return app


def create_standalone_app() -> FastAPI:
    """Return the app for a process that serves nothing else (``iterable-webhooks serve``).

    As :func:`create_app` with no arguments, plus ``freeze_gc=True``.
    """
    return create_app(freeze_gc=True)
