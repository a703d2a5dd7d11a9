"""The provider's own state database: what each sync sent, and a log of every sync and export run.

``[iterable] sync_state_url`` names it; by default it is the event queue's database (a SQLite file
in ``$AIRFLOW_HOME``, or PostgreSQL when the deployment spans machines), so workers on several
machines share their state exactly when they share the queue.
"""

from __future__ import annotations

from airflow_provider_iterable.state.database import STATE_SCHEMA_VERSION, StateDatabase
from airflow_provider_iterable.state.runs import RUN_KINDS, RunLog, RunRecord

__all__ = ["RUN_KINDS", "STATE_SCHEMA_VERSION", "RunLog", "RunRecord", "StateDatabase"]
