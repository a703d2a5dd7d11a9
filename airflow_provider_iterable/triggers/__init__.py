"""Triggers that wait for Iterable webhook events in the event queue."""

from __future__ import annotations

from airflow_provider_iterable.triggers.webhook import IterableWebhookTrigger

__all__ = ["IterableWebhookTrigger"]
