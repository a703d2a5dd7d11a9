"""The runs table: one row per sync or export task run, dry runs included, for the Iterable UI page.

A row holds what the task pushed to XCom (``result``, the same dict), where it ran (DAG, task,
run, map index, try) and how it ended. Nothing in it identifies a person: results carry counts,
and the failure text of a run is the task's error message, which never names a user.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text, desc, insert, select

from airflow_provider_iterable._values import is_whole_number
from airflow_provider_iterable.event_queue.schema import JSONText, UTCDateTime
from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.state.database import StateDatabase, metadata

__all__ = ["RUNS_TABLE", "RUN_KINDS", "RUN_STATUSES", "RunLog", "RunRecord"]

RUNS_TABLE = "iterable_runs"

#: What ran: the three syncs and the export.
RUN_KINDS = ("sync_users", "sync_list", "sync_catalog", "export")
#: How it ended.
RUN_STATUSES = ("success", "failed")

#: Most rows :meth:`RunLog.recent` returns at once.
MAX_RECENT = 1000
_MAX_ERROR_CHARS = 2000

runs = Table(
    RUNS_TABLE,
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    # A sync's ``sync_id``, or an export's data type name.
    Column("name", String(250), nullable=False),
    Column("dag_id", String(250), nullable=True),
    Column("task_id", String(250), nullable=True),
    Column("run_id", String(250), nullable=True),
    Column("map_index", Integer(), nullable=True),
    Column("try_number", Integer(), nullable=True),
    Column("status", String(16), nullable=False),
    Column("dry_run", Boolean(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("ended_at", UTCDateTime(), nullable=False),
    Column("result", JSONText(), nullable=False),
    Column("error", Text(), nullable=True),
    Index("ix_iterable_runs_ended_at", "ended_at", "id"),
    Index("ix_iterable_runs_kind_ended_at", "kind", "ended_at", "id"),
    sqlite_autoincrement=True,
)


@dataclass(frozen=True)
class RunRecord:
    """One sync or export run.

    :param kind: one of :data:`RUN_KINDS`.
    :param name: the sync's ``sync_id``, or the export's data type name.
    :param status: ``"success"`` or ``"failed"``.
    :param result: the task's XCom result (a JSON object).
    :param ended_at: when the run ended (timezone-aware); default now.
    :param started_at: when it started, if known.
    :param dry_run: whether it was a dry run (nothing sent, nothing recorded but this row).
    :param dag_id: the DAG of the task.
    :param task_id: the task.
    :param run_id: the DAG run.
    :param map_index: the map index of a mapped task (-1 or ``None`` otherwise).
    :param try_number: the task's try.
    :param error: why a failed run failed (the task's error message), else ``None``.
    :param id: the row's id, once stored.
    """

    kind: str
    name: str
    status: str
    result: Mapping[str, Any]
    ended_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    started_at: datetime | None = None
    dry_run: bool = False
    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    error: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in RUN_KINDS:
            raise IterableConfigError(f"kind must be one of {RUN_KINDS}, got {self.kind!r}")
        if self.status not in RUN_STATUSES:
            raise IterableConfigError(f"status must be one of {RUN_STATUSES}, got {self.status!r}")
        if not isinstance(self.name, str) or not self.name or len(self.name) > 250:
            raise IterableConfigError(
                f"name must be a non-empty string of at most 250 characters, got {self.name!r}"
            )
        if not isinstance(self.result, Mapping):
            raise IterableConfigError(f"result must be a JSON object, got {type(self.result).__name__}")
        for moment in (self.ended_at, self.started_at):
            if moment is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
                raise IterableConfigError(f"run times must be timezone-aware datetimes, got {moment!r}")

    @classmethod
    def from_context(
        cls,
        context: Mapping[str, Any],
        *,
        kind: str,
        name: str,
        status: str,
        result: Mapping[str, Any],
        **fields: Any,
    ) -> RunRecord:
        """Build the record of the task run described by an Airflow task ``context``.

        :param context: the task's context (its ``ti`` names DAG, task, run, map index and try).
        :param kind: one of :data:`RUN_KINDS`.
        :param name: the sync's ``sync_id``, or the export's data type name.
        :param status: ``"success"`` or ``"failed"``.
        :param result: the task's XCom result.
        :param fields: any other :class:`RunRecord` field (``started_at``, ``dry_run``, ``error``).
        """
        ti = context.get("ti")
        return cls(
            kind=kind,
            name=name,
            status=status,
            result=result,
            dag_id=getattr(ti, "dag_id", None),
            task_id=getattr(ti, "task_id", None),
            run_id=getattr(ti, "run_id", None),
            map_index=getattr(ti, "map_index", None),
            try_number=getattr(ti, "try_number", None),
            **fields,
        )


class RunLog:
    """Append runs to the runs table and read the recent ones.

    :param database: the state database, or its URL; ``None`` reads ``[iterable] sync_state_url``.
    """

    def __init__(self, database: StateDatabase | str | None = None) -> None:
        self.database = database if isinstance(database, StateDatabase) else StateDatabase(database)

    def append(self, record: RunRecord) -> int:
        """Store one run and return its id.

        :param record: the run.
        :raises StateUnavailableError: when the state database cannot commit it now.
        """
        try:
            result = json.loads(json.dumps(dict(record.result), default=str, allow_nan=False))
        except ValueError as exc:
            raise IterableConfigError(f"the run's result is not JSON: {exc}") from None
        error = None if record.error is None else record.error[:_MAX_ERROR_CHARS]
        values = {
            "kind": record.kind,
            "name": record.name,
            "dag_id": record.dag_id,
            "task_id": record.task_id,
            "run_id": record.run_id,
            "map_index": record.map_index,
            "try_number": record.try_number,
            "status": record.status,
            "dry_run": bool(record.dry_run),
            "started_at": record.started_at,
            "ended_at": record.ended_at,
            "result": result,
            "error": error,
        }
        with self.database.write("append a run") as conn:
            return int(conn.execute(insert(runs).values(**values).returning(runs.c.id)).scalar_one())

    def recent(self, *, limit: int = 50, kind: str | None = None) -> list[RunRecord]:
        """Return the most recent runs, newest first.

        :param limit: how many (1 to 1,000).
        :param kind: only runs of this kind (one of :data:`RUN_KINDS`), or every kind.
        """
        if not is_whole_number(limit, minimum=1, maximum=MAX_RECENT):
            raise IterableConfigError(f"limit must be a whole number from 1 to {MAX_RECENT}, got {limit!r}")
        if kind is not None and kind not in RUN_KINDS:
            raise IterableConfigError(f"kind must be one of {RUN_KINDS} or None, got {kind!r}")
        query = select(runs).order_by(desc(runs.c.ended_at), desc(runs.c.id)).limit(limit)
        if kind is not None:
            query = query.where(runs.c.kind == kind)
        with self.database.read("read recent runs") as conn:
            rows = conn.execute(query).mappings().all()
        return [RunRecord(**dict(row)) for row in rows]
