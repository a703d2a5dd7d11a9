"""The writer process: store the batches a receiver sends over its socket, and answer each.

Started by :class:`~airflow_provider_iterable.webhooks.writer_process.ProcessWriter`, one per
receiver event loop. It commits everything that has arrived (up to ``--max-batch`` events, one
transaction, one fsync) and answers with one frame of results. It exits when the receiver closes
the socket or dies (end of file), after finishing the batch in hand; while idle it also checks
every second that the receiver is still its parent, since a process forked from the receiver
would hold a copy of the socket and the end of file would then never come. SIGTERM makes it
stop reading, store what it has and exit.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import socket
import sys
from typing import Any

from airflow_provider_iterable.event_queue import EventQueue, NewEvent, QueueUnavailableError
from airflow_provider_iterable.webhooks import _wire
from airflow_provider_iterable.webhooks.writer import store_batch

#: Seconds between two checks, while the writer is idle, that its receiver is alive.
PARENT_CHECK_INTERVAL = 1.0


def _recv_frames(
    sock: socket.socket, buffer: bytearray, block: bool, parent_pid: int | None = None
) -> list[Any] | None:
    """Read what is available; return the complete frames, or ``None`` at end of file.

    :param sock: The socket to the receiver.
    :param buffer: Bytes read but not yet framed; consumed frames are removed from it.
    :param block: Wait for data (nothing is pending).
    :param parent_pid: While waiting, a parent other than this pid counts as end of file.
    """
    if block:
        while not select.select([sock], [], [], PARENT_CHECK_INTERVAL)[0]:
            if parent_pid is not None and os.getppid() != parent_pid:
                return None  # the receiver died (reparented), whoever still holds its socket
        chunk = sock.recv(1 << 20)
        if not chunk:
            return None
        buffer += chunk
    while select.select([sock], [], [], 0)[0]:
        chunk = sock.recv(1 << 20)
        if not chunk:
            if buffer:
                break
            return None
        buffer += chunk
    return _wire.take_frames(buffer)


def child_main(argv: list[str] | None = None) -> int:
    """Run the writer process: read batches from the socket, store them, answer.

    :param argv: Command-line arguments (from :class:`ProcessWriter`).
    """
    parser = argparse.ArgumentParser(prog="iterable-webhooks-writer")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--busy-timeout", type=float, required=True)
    parser.add_argument("--dedupe-window", type=float, required=True)
    parser.add_argument("--max-batch", type=int, required=True)
    parser.add_argument("--quick-failure", type=float, required=True)
    args = parser.parse_args(argv)
    # Unset: the configured [iterable] queue_url, read in this process.
    queue_url = os.environ.pop(_wire.QUEUE_URL_ENV, None)

    sock = socket.socket(fileno=args.fd)

    def on_term(signum: int, frame: Any) -> None:
        # Stop reading: what was received is stored and answered, then the process exits.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the receiver's Ctrl-C is for the receiver
    opened: list[EventQueue] = []

    def queue() -> EventQueue:
        if not opened:
            opened.append(EventQueue(queue_url, busy_timeout=args.busy_timeout))
        return opened[0]

    buffer = bytearray()
    pending: list[tuple[int, NewEvent]] = []
    try:
        while True:
            try:
                frames = _recv_frames(sock, buffer, block=not pending, parent_pid=args.parent_pid)
            except InterruptedError:
                continue
            except OSError:
                frames = None  # the connection broke: the receiver is gone
            if frames is None and not pending:
                break  # the receiver closed the socket or died
            for frame in frames or []:
                pending.extend(frame)
            batch, pending = pending[: args.max_batch], pending[args.max_batch :]
            if not batch:
                continue
            results, errors = store_batch(
                queue,
                [event for _, event in batch],
                dedupe_window_seconds=args.dedupe_window,
                quick_failure_seconds=args.quick_failure,
            )
            answer: list[tuple[int, Any, tuple[str, str] | None]] = []
            for (request_id, _), value, error in zip(batch, results, errors, strict=True):
                if error is None:
                    answer.append((request_id, value, None))
                elif isinstance(error, QueueUnavailableError):
                    answer.append((request_id, None, (_wire.UNAVAILABLE, str(error))))
                else:
                    answer.append((request_id, None, (_wire.FAILED, type(error).__name__)))
            try:
                sock.sendall(_wire.frame(answer))
            except OSError:
                break  # the receiver is gone; what was committed stays committed
            if frames is None and not pending:
                break
    finally:
        for item in opened:
            with contextlib.suppress(Exception):
                item.close()
        sock.close()
    return 0


def main() -> int:
    """Entry point of the writer process (its arguments come from :class:`ProcessWriter`)."""
    # Warnings (a failed batch, an unavailable store) reach the receiver's stderr.
    logging.basicConfig(level=logging.WARNING)
    return child_main(sys.argv[1:])
