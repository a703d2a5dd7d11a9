"""The Airflow plugin that mounts the webhook receiver on Airflow's API server.

Registered through the ``airflow.plugins`` entry point. The app is built when the plugin is
imported (in every Airflow component), which is cheap: building it reads no configuration and
opens no database. That happens only when the API server starts the app.
Mounted apps get no Airflow authentication: the receiver's per-connection secret is the gate.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_iterable.webhooks import create_app


class IterableWebhooksPlugin(AirflowPlugin):
    """Serve Iterable system and journey webhooks at ``/iterable/webhooks/<conn_id>/...``."""

    name = "iterable"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/iterable", "name": "Iterable webhooks"}]
