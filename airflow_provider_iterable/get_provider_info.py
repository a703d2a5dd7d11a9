"""Describe the provider to Airflow (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_iterable import __version__


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata, connection type, config section and components."""
    return {
        "package-name": "airflow-provider-iterable",
        "name": "Iterable",
        "description": "Push users, events, lists and messages to `Iterable <https://iterable.com/>`__ "
        "and react to its system and journey webhooks.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Iterable",
                "external-doc-url": "https://api.iterable.com/api/docs",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Iterable",
                "python-modules": ["airflow_provider_iterable.hooks.iterable"],
            }
        ],
        "operators": [
            {
                "integration-name": "Iterable",
                "python-modules": [
                    "airflow_provider_iterable.operators.users",
                    "airflow_provider_iterable.operators.lists",
                    "airflow_provider_iterable.operators.events",
                    "airflow_provider_iterable.operators.messaging",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Iterable",
                "python-modules": ["airflow_provider_iterable.sensors.webhook"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Iterable",
                "python-modules": ["airflow_provider_iterable.triggers.webhook"],
            }
        ],
        "queues": ["airflow_provider_iterable.queues.iterable.IterableMessageQueueProvider"],
        "connection-types": [
            {
                "connection-type": "iterable",
                "hook-class-name": "airflow_provider_iterable.hooks.iterable.IterableHook",
                "hook-name": "Iterable",
                "conn-fields": {
                    "region": {
                        "label": "Data center",
                        "description": "us (api.iterable.com) or eu (api.eu.iterable.com). "
                        "An API key works only in the data center of its project.",
                        "schema": {"type": ["string", "null"], "enum": ["us", "eu"], "default": "us"},
                    },
                    "webhook_secrets": {
                        "label": "Webhook secret(s)",
                        "description": "The token Iterable sends with each webhook (Authorization "
                        "header). Several, comma-separated, while you rotate it.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "webhook_secret_header": {
                        "label": "Webhook secret header",
                        "description": "Header that carries the webhook secret (default Authorization).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "webhook_auth": {
                        "label": "Webhook authentication",
                        "description": "'none' accepts webhooks without a secret (not recommended).",
                        "schema": {"type": ["string", "null"], "enum": ["secret", "none"]},
                    },
                    "timeout": {
                        "label": "Request timeout (seconds)",
                        "schema": {"type": ["number", "null"], "default": 30},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"password": "API key", "host": "API base URL (optional)"},
                    "placeholders": {
                        "password": "32-character server-side API key from Integrations > API Keys",
                        "host": "leave empty to use the data center's URL",
                        "region": "us",
                        "webhook_secret_header": "Authorization",
                    },
                },
            }
        ],
        # The plugin that mounts the webhook receiver is registered through the `airflow.plugins`
        # entry point only: listed here too, Airflow would load it twice and warn.
        "config": {
            "iterable": {
                "description": "Iterable webhook receiver, event queue and state database. The "
                "receiver, the triggerer and the workers read the same section, so they find the "
                "same queue and state.",
                "options": {
                    "queue_url": {
                        "description": "SQLAlchemy URL of the webhook event queue. Empty: a SQLite "
                        "file iterable_webhooks.db in AIRFLOW_HOME, which serves one host only. Use "
                        "postgresql+psycopg://... when receivers and triggerers run on several machines.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "postgresql+psycopg://airflow:***@db:5432/iterable",
                        "default": "",
                        "sensitive": True,
                    },
                    "sync_state_url": {
                        "description": "SQLAlchemy URL of the provider's state database: the "
                        "fingerprints of what each sync sent and the runs of syncs and exports. Empty: "
                        "the event queue's database (queue_url). Use PostgreSQL when sync tasks run on "
                        "several machines, so every worker sees the same state.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "postgresql+psycopg://airflow:***@db:5432/iterable",
                        "default": "",
                        "sensitive": True,
                    },
                    "webhook_max_body_bytes": {
                        "description": "Largest webhook body accepted, in bytes; larger ones get 413.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": None,
                        "default": "1048576",
                    },
                    "webhook_retention_days": {
                        "description": "Days a stored event is kept. Older events that every "
                        "durable cursor has passed are purged.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": None,
                        "default": "7",
                    },
                    "webhook_dedupe_window_seconds": {
                        "description": "An identical delivery within this many seconds is a retry "
                        "and stores nothing new.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": None,
                        "default": "3600",
                    },
                },
            }
        },
    }
