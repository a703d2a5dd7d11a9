"""Sensors that wait for Iterable webhook events."""

from __future__ import annotations

from airflow_provider_iterable.sensors.webhook import (
    IterableSystemWebhookSensor,
    IterableWebhookSensor,
    IterableWorkflowWebhookSensor,
)

__all__ = ["IterableSystemWebhookSensor", "IterableWebhookSensor", "IterableWorkflowWebhookSensor"]
