"""The Airflow plugin that mounts the webhook receiver on Airflow's API server.

Registered through the ``airflow.plugins`` entry point. Every Airflow component imports its
plugins, every task process included, while only the API server serves them: so the plugin
module imports neither FastAPI nor the receiver. It mounts a small ASGI stand-in that builds the
receiver on its first request (building reads no configuration and opens no database either;
that happens when the receiver handles its first delivery).
Mounted apps get no Airflow authentication: the receiver's per-connection secret is the gate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.plugins_manager import AirflowPlugin

if TYPE_CHECKING:
    from fastapi import FastAPI


class LazyReceiverApp:
    """An ASGI app that builds the webhook receiver the first time it is needed.

    Requests, and any attribute read (``app.state``, ``app.routes``), go to the receiver built
    by :func:`airflow_provider_iterable.webhooks.create_app` with no arguments.
    """

    def __init__(self) -> None:
        self._app: FastAPI | None = None

    @property
    def app(self) -> FastAPI:
        """The receiver, built on first use."""
        if self._app is None:
            from airflow_provider_iterable.webhooks import create_app

            self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class lacks: read them from the receiver.
        if name.startswith("__") or name == "_app":
            raise AttributeError(name)
        return getattr(self.app, name)


class IterableWebhooksPlugin(AirflowPlugin):
    """Serve Iterable system and journey webhooks at ``/iterable/webhooks/<conn_id>/...``."""

    name = "iterable"
    fastapi_apps = [{"app": LazyReceiverApp(), "url_prefix": "/iterable", "name": "Iterable webhooks"}]
