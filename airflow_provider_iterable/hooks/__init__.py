"""Hooks of the Iterable provider."""

from __future__ import annotations

from airflow_provider_iterable.hooks.iterable import IterableHook

__all__ = ["IterableHook"]
