"""R5: oversize bodies are refused without being read, against a real receiver process.

Raw sockets send what an HTTP client library would not: chunked bodies without a length, a
``Content-Length`` that lies, 50 MB that never stops.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.webhooks.conftest import CONN_ID, SECRET, ReceiverProcess, count_rows

LIMIT = 16_384
PATH = f"/webhooks/{CONN_ID}/system"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    url = f"sqlite:///{tmp_path_factory.mktemp('limits') / 'queue.db'}"
    with ReceiverProcess(url, extra_args=["--max-body-bytes", str(LIMIT)]) as proc:
        yield proc


def body_of_size(size: int, tag: str) -> bytes:
    """A valid JSON object of exactly ``size`` bytes."""
    head = json.dumps({"email": f"{tag}@example.com", "eventName": "emailSend", "pad": ""}).encode()
    pad = size - len(head)
    assert pad >= 0
    raw = head[:-2] + b"x" * pad + b'"}'
    assert len(raw) == size
    json.loads(raw)
    return raw


def address(proc: ReceiverProcess) -> tuple[str, int]:
    host, port = proc.url.removeprefix("http://").split(":")
    return host, int(port)


def request_head(extra: str) -> bytes:
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {SECRET}\r\nConnection: close\r\n{extra}\r\n"
    ).encode()


def read_status(sock: socket.socket, timeout: float = 30) -> int:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def send_raw(proc: ReceiverProcess, payload: bytes) -> int:
    with socket.create_connection(address(proc), timeout=30) as sock:
        sock.sendall(payload)
        return read_status(sock)


def chunked(body: bytes, chunk_size: int = 4096) -> bytes:
    out = b""
    for start in range(0, len(body), chunk_size):
        part = body[start : start + chunk_size]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


def rows(proc: ReceiverProcess) -> int:
    return count_rows(proc.queue_url)


@pytest.mark.parametrize(("delta", "status"), [(-1, 200), (0, 200), (1, 413)], ids=["below", "at", "above"])
def test_limit_boundaries_with_content_length(limited: ReceiverProcess, delta: int, status: int) -> None:
    before = rows(limited)
    body = body_of_size(LIMIT + delta, f"cl{delta}")
    assert send_raw(limited, request_head(f"Content-Length: {len(body)}\r\n") + body) == status
    assert rows(limited) == before + (1 if status == 200 else 0)


@pytest.mark.parametrize(("delta", "status"), [(-1, 200), (0, 200), (1, 413)], ids=["below", "at", "above"])
def test_limit_boundaries_chunked_without_length(limited: ReceiverProcess, delta: int, status: int) -> None:
    before = rows(limited)
    body = body_of_size(LIMIT + delta, f"chunked{delta}")
    assert send_raw(limited, request_head("Transfer-Encoding: chunked\r\n") + chunked(body)) == status
    assert rows(limited) == before + (1 if status == 200 else 0)


def test_declared_oversize_is_refused_before_the_body_is_sent(limited: ReceiverProcess) -> None:
    before = rows(limited)
    with socket.create_connection(address(limited), timeout=30) as sock:
        # Only the head: the answer must come without waiting for the 100 MB announced.
        sock.sendall(request_head("Content-Length: 100000000\r\n"))
        started = time.monotonic()
        assert read_status(sock, timeout=10) == 413
        assert time.monotonic() - started < 5
    assert rows(limited) == before


def test_content_length_smaller_than_the_body(limited: ReceiverProcess) -> None:
    # The server reads only what the header announced: a cut-off JSON body, refused as such.
    before = rows(limited)
    body = body_of_size(LIMIT * 3, "liar-small")
    assert send_raw(limited, request_head("Content-Length: 100\r\n") + body) == 400
    assert rows(limited) == before


def test_content_length_within_limit_is_not_trusted_for_chunked(limited: ReceiverProcess) -> None:
    # Both headers: HTTP says Transfer-Encoding wins; the bytes are counted whatever the header.
    before = rows(limited)
    body = body_of_size(LIMIT * 2, "liar-both")
    status = send_raw(
        limited, request_head("Content-Length: 50\r\nTransfer-Encoding: chunked\r\n") + chunked(body)
    )
    assert status in (400, 413)
    assert rows(limited) == before


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_fifty_megabytes_chunked_do_not_grow_memory(limited: ReceiverProcess) -> None:
    before_rows = rows(limited)
    rss_before = rss_kib(limited.pid)
    chunk = b"x" * 65_536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    status = None
    with socket.create_connection(address(limited), timeout=30) as sock:
        sock.sendall(request_head("Transfer-Encoding: chunked\r\n"))
        try:
            while sent < 50 * 1024 * 1024:
                sock.sendall(frame)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading and closed: what it should do
        try:
            status = read_status(sock, timeout=10)
        except (ConnectionResetError, OSError, IndexError):
            status = None
    rss_after = rss_kib(limited.pid)
    assert status in (413, None)
    # The receiver stopped well before 50 MB, and its memory did not follow what was sent.
    assert sent < 50 * 1024 * 1024 or status == 413
    assert rss_after - rss_before < 10 * 1024, (rss_before, rss_after)
    assert limited.proc is not None and limited.proc.poll() is None
    assert rows(limited) == before_rows


def test_fifty_megabytes_with_honest_length_are_refused_at_once(limited: ReceiverProcess) -> None:
    rss_before = rss_kib(limited.pid)
    sent = 0
    with socket.create_connection(address(limited), timeout=30) as sock:
        sock.sendall(request_head(f"Content-Length: {50 * 1024 * 1024}\r\n"))
        # The answer comes from the head alone; then the server closes instead of reading.
        assert read_status(sock) == 413
        try:
            while sent < 50 * 1024 * 1024:
                sock.sendall(b"x" * 65_536)
                sent += 65_536
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert sent < 50 * 1024 * 1024
    assert rss_kib(limited.pid) - rss_before < 10 * 1024
