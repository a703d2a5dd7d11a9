"""Make ``MessageQueueTrigger(scheme="iterable", ...)`` wait for Iterable webhook events.

Airflow's ``common.messaging`` provider (install the ``messaging`` extra) offers one trigger for
every message queue: ``MessageQueueTrigger(scheme=..., **kwargs)`` finds the provider whose
``scheme`` matches and builds that provider's trigger with the remaining keyword arguments. Here
the queue is the provider's own webhook event queue and the trigger is
:class:`~airflow_provider_iterable.triggers.IterableWebhookTrigger`, so::

    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
    from airflow.sdk import Asset, AssetWatcher

    opens = Asset(
        "iterable_email_opens",
        watchers=[
            AssetWatcher(
                name="iterable_email_opens_watcher",
                trigger=MessageQueueTrigger(scheme="iterable", event_name="emailOpen"),
            )
        ],
    )

takes the same filters as the trigger (``iterable_conn_id``, ``kind``, ``event_name``,
``workflow_id``, ``match``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_iterable.triggers.webhook import IterableWebhookTrigger

if TYPE_CHECKING:
    from airflow.triggers.base import BaseEventTrigger

try:
    from airflow.providers.common.messaging.providers.base_provider import BaseMessageQueueProvider
except ImportError:  # the optional "messaging" extra is not installed: keep the module importable
    BaseMessageQueueProvider = object  # type: ignore[assignment,misc]


class IterableMessageQueueProvider(BaseMessageQueueProvider):  # type: ignore[misc,valid-type]
    """The Iterable webhook event queue as a common.messaging queue (scheme ``iterable``)."""

    scheme = "iterable"

    def scheme_matches(self, scheme: str) -> bool:
        """Return whether ``scheme`` names this queue (``iterable``).

        :param scheme: The ``scheme`` given to ``MessageQueueTrigger``.
        """
        return scheme == self.scheme

    def trigger_class(self) -> type[BaseEventTrigger]:
        """Return :class:`~airflow_provider_iterable.triggers.IterableWebhookTrigger`."""
        return IterableWebhookTrigger


__all__ = ["IterableMessageQueueProvider"]
