"""The Iterable webhook receiver: an ASGI app that stores webhooks durably in the event queue.

Mounted on Airflow's API server by :class:`~airflow_provider_iterable.plugins.IterableWebhooksPlugin`
(under ``/iterable``), or served on its own with ``iterable-webhooks serve`` or
``uvicorn --factory airflow_provider_iterable.webhooks:create_app``. Its settings are
:class:`~airflow_provider_iterable.webhooks.settings.ReceiverSettings`.
"""

from __future__ import annotations

from airflow_provider_iterable.webhooks.app import create_app
from airflow_provider_iterable.webhooks.settings import ReceiverSettings

__all__ = ["ReceiverSettings", "create_app"]
