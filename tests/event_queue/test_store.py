"""The synchronous queue on SQLite and PostgreSQL: append, fetch, dedupe, cursors, purge."""

from __future__ import annotations

import logging
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from airflow_provider_iterable.event_queue import (
    EventQueue,
    NewEvent,
    QueueUnavailableError,
    StoredEvent,
    WebhookFilter,
)
from airflow_provider_iterable.event_queue.notice import network_filesystem, notice_backend
from airflow_provider_iterable.event_queue.schema import SCHEMA_VERSION, normalize_url
from tests.event_queue.conftest import Clock, make_event


def test_append_returns_increasing_ids_and_fetch_returns_them_in_order(queue: EventQueue) -> None:
    stored = [queue.append(make_event(), dedupe_window_seconds=3600) for _ in range(5)]
    ids = [event_id for event_id, new in stored]
    assert all(new for _, new in stored)
    assert ids == sorted(ids) and len(set(ids)) == 5
    fetched = queue.fetch()
    assert [e.id for e in fetched] == ids
    assert queue.head_id() == ids[-1]
    assert [e.id for e in queue.fetch(after_id=ids[1])] == ids[2:]
    assert [e.id for e in queue.fetch(after_id=ids[0], limit=2)] == ids[1:3]


def test_stored_event_round_trips_every_field(queue: EventQueue, clock: Clock) -> None:
    event = NewEvent(
        conn_id="iterable_eu",
        kind="journey",
        payload={"email": "zoë@example.com", "nested": {"list": [1, 2.5, None, "x"]}, "flag": True},
        query={"campaignId": "42", "tag": ["a", "b"]},
        event_name=None,
        workflow_id=3001,
        campaign_id=42,
        email="zoë@example.com",
        user_id="u-1",
        dedupe_key="a" * 64,
    )
    event_id, new = queue.append(event, dedupe_window_seconds=60)
    assert new
    (stored,) = queue.fetch()
    assert stored == StoredEvent(
        id=event_id,
        received_at=clock.now,
        conn_id="iterable_eu",
        kind="journey",
        event_name=None,
        workflow_id=3001,
        campaign_id=42,
        email="zoë@example.com",
        user_id="u-1",
        payload=event.payload,
        query=event.query,
    )
    assert stored.received_at.utcoffset() == timedelta(0)
    as_dict = stored.to_dict()
    assert as_dict["received_at"] == "2026-11-27T12:00:00+00:00"
    assert (
        as_dict["id"] == event_id and as_dict["payload"] == event.payload and as_dict["query"] == event.query
    )


def test_head_id_is_zero_on_an_empty_queue(queue: EventQueue) -> None:
    assert queue.head_id() == 0
    assert queue.fetch() == []


def test_fetch_filters_combine(queue: EventQueue, clock: Clock) -> None:
    events = {
        "send": make_event(event_name="emailSend"),
        "open": make_event(event_name="emailOpen"),
        "open_eu": make_event(event_name="emailOpen", conn_id="iterable_eu"),
        "journey": make_event(kind="journey", event_name=None, workflow_id=7),
        "journey_named": make_event(kind="journey", event_name="emailOpen", workflow_id=8),
        "sys_wf": make_event(event_name="emailSend", workflow_id=7),
    }
    ids = {}
    for name, event in events.items():
        ids[name] = queue.append(event, dedupe_window_seconds=60)[0]
        clock.advance(minutes=1)

    def fetched(*, after_id: int = 0, limit: int = 1000, **filters: Any) -> list[str]:
        by_id = {v: k for k, v in ids.items()}
        return [by_id[e.id] for e in queue.fetch(WebhookFilter(**filters), after_id=after_id, limit=limit)]

    assert fetched(conn_id="iterable_default", event_name="emailOpen") == ["open", "journey_named"]
    assert fetched(conn_id="iterable_default", kind="system", event_name="emailOpen") == ["open"]
    assert fetched(conn_id="iterable_eu") == ["open_eu"]
    assert fetched(kind="journey") == ["journey", "journey_named"]
    assert fetched(workflow_id=7) == ["journey", "sys_wf"]
    assert fetched(workflow_id=7, kind="journey") == ["journey"]
    assert fetched(event_name="emailSend") == ["send", "sys_wf"]
    assert fetched(conn_id="iterable_default", event_name="nope") == []
    start = clock.now - timedelta(minutes=6)
    assert fetched(since=start + timedelta(minutes=3)) == ["journey", "journey_named", "sys_wf"]
    assert fetched(
        since=start + timedelta(minutes=3), conn_id="iterable_default", event_name="emailOpen"
    ) == ["journey_named"]
    assert fetched(since=clock.now) == []
    assert fetched(after_id=ids["journey"], workflow_id=7) == ["sys_wf"]
    assert fetched(after_id=ids["open"], conn_id="iterable_default", event_name="emailOpen", limit=1) == [
        "journey_named"
    ]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"after_id": -1}, "after_id"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"kind": "sms"}, "kind"),
        ({"workflow_id": "7"}, "workflow_id"),
        ({"event_name": 5}, "event_name"),
    ],
)
def test_fetch_rejects_bad_arguments(tmp_path: Path, filters: dict[str, Any], message: str) -> None:
    queue = EventQueue(f"sqlite:///{tmp_path / 'q.db'}")
    paging = {name: filters.pop(name) for name in ("after_id", "limit") if name in filters}
    with pytest.raises(ValueError, match=message):
        queue.fetch(WebhookFilter(**filters), **paging)


def test_fetch_rejects_a_naive_since(queue: EventQueue, clock: Clock) -> None:
    with pytest.raises(ValueError, match="since"):
        queue.fetch(WebhookFilter(since=clock.now.replace(tzinfo=None)))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "sms"}, "kind"),
        ({"workflow_id": "7"}, "workflow_id"),
        ({"workflow_id": True}, "workflow_id"),
        ({"workflow_id": 2**63}, "workflow_id must fit in 64 bits"),
        ({"campaign_id": -(2**63) - 1}, "campaign_id must fit in 64 bits"),
        ({"conn_id": ""}, "conn_id"),
        ({"conn_id": "c" * 251}, "conn_id must be at most 250"),
        ({"event_name": "e" * 256}, "event_name must be at most 255"),
        ({"event_name": "email\x00Open"}, "event_name must not contain NUL"),
        ({"email": "a\ud800@example.com"}, "email is not valid Unicode"),
        ({"user_id": 42}, "user_id must be a string"),
        ({"dedupe_key": "k" * 129}, "dedupe_key must be at most 128"),
        ({"payload": ["not", "an", "object"]}, "payload must be a dict"),
    ],
)
def test_new_event_rejects_what_no_backend_can_store(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_event(**fields)  # type: ignore[arg-type]


def test_awkward_but_valid_json_round_trips(queue: EventQueue) -> None:
    payload = {"nul": "a\x00b", "surrogate": "\ud800", "emoji": "\U0001f600", "big": 2**70, "e": 1.5e300}
    queue.append(
        make_event(payload=payload, event_name="é" * 255, email="x" * 1000), dedupe_window_seconds=60
    )
    (stored,) = queue.fetch()
    assert stored.payload == payload
    assert stored.event_name == "é" * 255 and stored.email == "x" * 1000


@pytest.mark.parametrize("payload", [{"nan": float("nan")}, {"set": {1, 2}}])
def test_payloads_that_are_not_json_are_refused_and_nothing_is_stored(
    queue: EventQueue, payload: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match="payload is not JSON-serialisable"):
        queue.append_many([make_event(), make_event(payload=payload)], dedupe_window_seconds=60)
    assert queue.fetch() == []


def test_duplicate_within_window_is_absorbed_and_after_it_is_new(queue: EventQueue, clock: Clock) -> None:
    first = queue.append(make_event(dedupe_key="same"), dedupe_window_seconds=3600)
    clock.advance(minutes=59)
    again = queue.append(make_event(dedupe_key="same"), dedupe_window_seconds=3600)
    assert first[1] is True
    assert again == (first[0], False)
    clock.advance(minutes=1, seconds=1)  # 3601 s after the first copy
    later = queue.append(make_event(dedupe_key="same"), dedupe_window_seconds=3600)
    assert later[1] is True and later[0] > first[0]
    assert [e.id for e in queue.fetch()] == [first[0], later[0]]
    # A retry now is a duplicate of the newest copy.
    assert queue.append(make_event(dedupe_key="same"), dedupe_window_seconds=3600) == (later[0], False)


def test_dedupe_window_zero_stores_every_copy(queue: EventQueue) -> None:
    a = queue.append(make_event(dedupe_key="k"), dedupe_window_seconds=0)
    b = queue.append(make_event(dedupe_key="k"), dedupe_window_seconds=0)
    assert a[1] and b[1] and a[0] != b[0]


def test_dedupe_window_defaults_to_config(
    queue: EventQueue, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setenv("AIRFLOW__ITERABLE__WEBHOOK_DEDUPE_WINDOW_SECONDS", "10")
    first = queue.append(make_event(dedupe_key="cfg"))
    clock.advance(seconds=9)
    assert queue.append(make_event(dedupe_key="cfg")) == (first[0], False)
    clock.advance(seconds=2)
    assert queue.append(make_event(dedupe_key="cfg"))[1] is True


def test_dedupe_window_rejects_negative(queue: EventQueue) -> None:
    with pytest.raises(ValueError, match="dedupe_window_seconds"):
        queue.append(make_event(), dedupe_window_seconds=-1)


def test_append_many_is_one_batch_with_dedupe_inside_and_against_stored(queue: EventQueue) -> None:
    stored_id, _ = queue.append(make_event(dedupe_key="old"), dedupe_window_seconds=60)
    batch = [
        make_event(dedupe_key="a"),
        make_event(dedupe_key="old"),
        make_event(dedupe_key="b"),
        make_event(dedupe_key="a"),
        make_event(dedupe_key="c"),
    ]
    results = queue.append_many(batch, dedupe_window_seconds=60)
    assert [new for _, new in results] == [True, False, True, False, True]
    assert results[1][0] == stored_id
    assert results[3][0] == results[0][0]
    assert results[0][0] < results[2][0] < results[4][0]
    rows = queue.fetch()
    assert [e.id for e in rows] == [stored_id, results[0][0], results[2][0], results[4][0]]
    # All events of one batch are received at the same instant (one transaction).
    assert len({e.received_at for e in rows[1:]}) == 1
    assert queue.append_many([], dedupe_window_seconds=60) == []


def test_append_many_rejects_non_events_before_writing(queue: EventQueue) -> None:
    with pytest.raises(TypeError, match="NewEvent"):
        queue.append_many([make_event(), {"conn_id": "x"}])  # type: ignore[list-item]
    assert queue.head_id() == 0


def test_cursors_only_move_forward(queue: EventQueue) -> None:
    assert queue.get_cursor("watcher") is None
    queue.set_cursor("watcher", 10)
    queue.set_cursor("watcher", 4)
    assert queue.get_cursor("watcher") == 10
    queue.set_cursor("watcher", 12)
    assert queue.get_cursor("watcher") == 12
    assert queue.get_cursor("other") is None
    with pytest.raises(ValueError, match="event_id"):
        queue.set_cursor("watcher", -1)
    with pytest.raises(ValueError, match="name"):
        queue.set_cursor("", 1)


def _age_and_fill(queue: EventQueue, clock: Clock) -> list[int]:
    """Store 3 events 10 days ago, 3 events 5 days ago, 3 now; return their ids."""
    ids = []
    for days_ago in (10, 5, 0):
        clock.advance(days=-days_ago)
        ids += [queue.append(make_event(), dedupe_window_seconds=60)[0] for _ in range(3)]
        clock.advance(days=days_ago)
    return ids


def test_purge_deletes_only_what_is_older_than_retention(queue: EventQueue, clock: Clock) -> None:
    ids = _age_and_fill(queue, clock)
    assert queue.purge(retention_days=7) == 3
    assert [e.id for e in queue.fetch()] == ids[3:]
    assert queue.purge(retention_days=7) == 0
    assert queue.purge(retention_days=1) == 3
    assert [e.id for e in queue.fetch()] == ids[6:]


def test_purge_keeps_what_a_live_cursor_has_not_passed(queue: EventQueue, clock: Clock) -> None:
    ids = _age_and_fill(queue, clock)
    queue.set_cursor("watcher", ids[1])  # has processed only the first two events
    assert queue.purge(retention_days=3) == 2
    assert [e.id for e in queue.fetch()] == ids[2:]
    queue.set_cursor("watcher", ids[-1])
    assert queue.purge(retention_days=3) == 4
    assert [e.id for e in queue.fetch()] == ids[6:]


def test_a_stale_cursor_stops_holding_events_back(
    queue: EventQueue, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    ids = _age_and_fill(queue, clock)
    clock.advance(days=-8)
    queue.set_cursor("abandoned", 0)  # last moved 8 days ago
    clock.advance(days=8)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_iterable.event_queue"):
        assert queue.purge(retention_days=7) == 3
    assert [e.id for e in queue.fetch()] == ids[3:]
    assert any("abandoned" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_purge_defaults_to_config_and_runs_in_batches(
    queue: EventQueue, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_iterable.event_queue import retention

    monkeypatch.setattr(retention, "PURGE_BATCH", 7)  # several transactions for 30 rows
    monkeypatch.setenv("AIRFLOW__ITERABLE__WEBHOOK_RETENTION_DAYS", "2")
    clock.advance(days=-3)
    queue.append_many([make_event() for _ in range(30)], dedupe_window_seconds=60)
    clock.advance(days=3)
    keep = queue.append(make_event(), dedupe_window_seconds=60)[0]
    assert queue.purge() == 30
    assert [e.id for e in queue.fetch()] == [keep]
    with pytest.raises(ValueError, match="retention_days"):
        queue.purge(retention_days=-1)


def test_ids_are_never_reused_after_purging_everything(queue: EventQueue, clock: Clock) -> None:
    last = queue.append_many([make_event() for _ in range(3)], dedupe_window_seconds=60)[-1][0]
    clock.advance(days=30)
    assert queue.purge(retention_days=7) == 3
    assert queue.append(make_event(), dedupe_window_seconds=60)[0] > last


def test_ping_commits_on_a_healthy_queue(queue: EventQueue) -> None:
    queue.ping()
    queue.ping()


def test_schema_is_versioned_and_created_once(queue_url: str) -> None:
    first = EventQueue(queue_url)
    second = EventQueue(queue_url)
    first.head_id()
    second.head_id()  # the second finds the schema in place
    engine = create_engine(normalize_url(queue_url))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM iterable_queue_schema")).scalars().all() == [
            SCHEMA_VERSION
        ]
        # A later release bumps the version: this one refuses to write into it.
        conn.execute(text("UPDATE iterable_queue_schema SET version = :v"), {"v": SCHEMA_VERSION + 1})
        conn.commit()
    engine.dispose()
    third = EventQueue(queue_url)
    with pytest.raises(QueueUnavailableError, match="newer than this release"):
        third.head_id()
    for q in (first, second, third):
        q.close()


def test_sqlite_runs_wal_with_synchronous_full(tmp_path: Path) -> None:
    queue = EventQueue(f"sqlite:///{tmp_path / 'q.db'}", busy_timeout=3)
    assert queue.settings() == {"journal_mode": "wal", "synchronous": 2, "busy_timeout_ms": 3000}
    queue.append(make_event(), dedupe_window_seconds=60)
    queue.close()
    # The file itself is in WAL mode, as any other process opening it sees.
    raw = sqlite3.connect(tmp_path / "q.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()


@pytest.mark.postgres
def test_postgres_commits_synchronously(postgres_url: str) -> None:
    queue = EventQueue(postgres_url)
    assert queue.settings() == {"synchronous_commit": "on", "fsync": "on"}
    queue.close()


def test_default_url_is_the_configured_one() -> None:
    queue = EventQueue()
    from airflow_provider_iterable import config

    assert queue.url == normalize_url(config.queue_url())
    assert queue.dialect == "sqlite"
    queue.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("sqlite+pysqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgres://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_urls_are_normalised(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite://", "sqlite:///:memory:", "", "not a url"])
def test_unsupported_urls_are_refused_naming_queue_url(url: str) -> None:
    with pytest.raises(ValueError, match="queue_url"):
        EventQueue(url)


def test_busy_timeout_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="busy_timeout"):
        EventQueue(f"sqlite:///{tmp_path / 'q.db'}", busy_timeout=0)


def test_password_never_appears_in_errors() -> None:
    queue = EventQueue("postgresql+psycopg://user:s3cr3t-pw@127.0.0.1:1/nowhere", busy_timeout=1)
    with pytest.raises(QueueUnavailableError) as info:
        queue.append(make_event(), dedupe_window_seconds=60)
    assert "s3cr3t-pw" not in str(info.value)
    assert "s3cr3t-pw" not in repr(queue)
    queue.close()


def test_network_filesystem_is_detected_from_the_mount_table(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    shared = tmp_path / "shared"
    mounts.write_text(
        "/dev/vda / ext4 rw 0 0\n"
        f"server:/export {shared} nfs4 rw,relatime 0 0\n"
        f"/dev/vdb {shared}/local ext4 rw 0 0\n"
    )
    assert network_filesystem(str(shared / "queue.db"), str(mounts)) == "nfs4"
    assert network_filesystem(str(shared / "sub" / "queue.db"), str(mounts)) == "nfs4"
    assert network_filesystem(str(shared / "local" / "queue.db"), str(mounts)) is None
    assert network_filesystem(str(tmp_path / "queue.db"), str(mounts)) is None
    assert network_filesystem(str(tmp_path / "queue.db"), str(tmp_path / "missing")) is None


def test_sqlite_notice_is_logged_once_per_queue(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'noticed.db'}"
    with caplog.at_level(logging.INFO, logger="airflow_provider_iterable.event_queue"):
        notice_backend(url)
        notice_backend(url)
        notice_backend("postgresql+psycopg://u@h/db")
    messages = [r.getMessage() for r in caplog.records if "one host" in r.getMessage()]
    assert len(messages) == 1 and "noticed.db" in messages[0]


def test_append_many_without_window_stores_every_copy_in_order(queue: EventQueue) -> None:
    batch = [make_event(dedupe_key="same") for _ in range(3)] + [make_event(dedupe_key="other")]
    results = queue.append_many(batch, dedupe_window_seconds=0)
    assert all(new for _, new in results)
    ids = [event_id for event_id, _ in results]
    assert ids == sorted(ids) and len(set(ids)) == 4
    rows = queue.fetch()
    assert [e.id for e in rows] == ids
    assert [e.payload for e in rows] == [e.payload for e in batch]


def test_append_many_ids_match_the_rows_across_batches(queue: EventQueue) -> None:
    """Every id returned names the row holding that event, batch after batch (no off-by-one)."""
    expected: dict[int, object] = {}
    for size in (1, 5, 2, 64, 3):
        batch = [make_event(workflow_id=size * 1000 + i) for i in range(size)]
        results = queue.append_many(batch, dedupe_window_seconds=60)
        assert all(new for _, new in results)
        expected.update(
            {event_id: event.payload for (event_id, _), event in zip(results, batch, strict=True)}
        )
    rows = queue.fetch(limit=10_000)
    assert {e.id: e.payload for e in rows} == expected
    assert [e.id for e in rows] == sorted(expected)


def test_append_many_keeps_optional_columns_and_large_numbers(queue: EventQueue) -> None:
    batch = [
        make_event(event_name=None, campaign_id=None, email=None, user_id=None, workflow_id=None),
        make_event(workflow_id=2**62, campaign_id=-(2**62), user_id="u-1", email="a@example.com"),
    ]
    queue.append_many(batch, dedupe_window_seconds=60)
    first, second = queue.fetch()
    assert (first.event_name, first.campaign_id, first.email, first.user_id, first.workflow_id) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert (second.workflow_id, second.campaign_id, second.user_id, second.email) == (
        2**62,
        -(2**62),
        "u-1",
        "a@example.com",
    )


def test_a_lock_error_is_told_by_sqlites_error_code(tmp_path: Path) -> None:
    from airflow_provider_iterable.event_queue.errors import sqlite_lock_error

    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(sqlite3.OperationalError) as locked:
            other.execute("INSERT INTO t VALUES (1)")
        assert sqlite_lock_error(locked.value)
        holder.execute("ROLLBACK")
        with pytest.raises(sqlite3.OperationalError) as other_error:
            other.execute("SELECT * FROM no_such_table")
        assert not sqlite_lock_error(other_error.value)
    finally:
        holder.close()
        other.close()
