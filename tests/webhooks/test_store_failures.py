"""R7: a broken store never gives a false acknowledgement.

While the queue cannot commit (SQLite locked past the busy timeout, a full or read-only disk,
PostgreSQL refusing connections) every delivery gets 503 with ``Retry-After`` and ``/health``
says 503; once the store is back the sender's resend is stored exactly once.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from airflow_provider_iterable.webhooks import create_app
from tests.webhooks.conftest import ReceiverProcess, ThreadedServer, count_rows, post, system_body


def assert_unavailable(url: str, body: dict[str, object]) -> None:
    answer = post(url, body)
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0
    health = httpx.get(url + "/health", timeout=30)
    assert health.status_code == 503
    assert "Retry-After" in health.headers


def assert_recovered(url: str, body: dict[str, object], queue_url: str, rows_before: int) -> None:
    answer = post(url, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "stored"
    again = post(url, body)
    assert again.json() == {"status": "duplicate", "id": answer.json()["id"]}
    assert httpx.get(url + "/health", timeout=30).status_code == 200
    assert count_rows(queue_url) == rows_before + 1


def test_sqlite_locked_past_busy_timeout(conn_env: str, tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    url = f"sqlite:///{path}"
    app = create_app(queue_url=url, busy_timeout=0.5, retry_after_seconds=7)
    with ThreadedServer(app) as server:
        assert post(server.url, system_body(0)).status_code == 200
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            answer = post(server.url, system_body(1))
            assert (answer.status_code, answer.headers["Retry-After"]) == (503, "7")
            assert_unavailable(server.url, system_body(1))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert_recovered(server.url, system_body(1), url, 1)


def _mount_tmpfs(target: Path, size: str) -> None:
    target.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True, timeout=30
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs: a disk that can be filled up and made read-only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    target = tmp_path / "disk"
    _mount_tmpfs(target, "4m")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def test_sqlite_disk_full(small_disk: Path) -> None:
    url = f"sqlite:///{small_disk / 'queue.db'}"
    with ReceiverProcess(url) as receiver:
        assert post(receiver.url, system_body(0)).status_code == 200
        filler = small_disk / "filler"
        with filler.open("wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65_536)
                    handle.flush()
            except OSError:
                pass  # the disk is full
        big = system_body(1, blob="x" * 400_000)
        try:
            answer = post(receiver.url, big)
            assert answer.status_code == 503, answer.text
            assert "Retry-After" in answer.headers
        finally:
            filler.unlink()
        assert_recovered(receiver.url, big, url, 1)


def test_sqlite_read_only_disk(small_disk: Path) -> None:
    url = f"sqlite:///{small_disk / 'queue.db'}"
    with ReceiverProcess(url) as receiver:
        assert post(receiver.url, system_body(0)).status_code == 200
    # Remounted read-only while no receiver holds it open, then a receiver started on it.
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True, timeout=30)
    try:
        with ReceiverProcess(url) as receiver:
            assert_unavailable(receiver.url, system_body(1))
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True, timeout=30)
    with ReceiverProcess(url) as receiver:
        assert_recovered(receiver.url, system_body(1), url, 1)


@pytest.mark.postgres
def test_postgresql_down(conn_env: str, postgres_url: str) -> None:
    admin = os.environ["ITERABLE_TEST_POSTGRES_URL"].replace("postgresql+psycopg://", "postgresql://")
    name = postgres_url.rpartition("/")[2]
    app = create_app(queue_url=postgres_url, busy_timeout=1.0)
    with ThreadedServer(app) as server, psycopg.connect(admin, autocommit=True) as pg:
        assert post(server.url, system_body(0)).status_code == 200
        # What a stopped server looks like to the receiver: its connections die, new ones fail.
        pg.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        pg.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            assert_unavailable(server.url, system_body(1))
            assert_unavailable(server.url, system_body(1))
        finally:
            pg.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert_recovered(server.url, system_body(1), postgres_url, 1)


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_a_queue_the_writer_cannot_open_is_a_503_not_a_500(conn_env: str, writer: str) -> None:
    # Not the database being down: a URL the store refuses to open. Whatever the writer raises,
    # the delivery was not stored and the sender must try again.
    app = create_app(queue_url="mysql://iterable@127.0.0.1/iterable", writer=writer, retry_after_seconds=3)
    with ThreadedServer(app) as server:
        answer = post(server.url, system_body(0))
        assert (answer.status_code, answer.headers.get("Retry-After")) == (503, "3"), answer.text
        assert httpx.get(server.url + "/health", timeout=30).status_code == 503
