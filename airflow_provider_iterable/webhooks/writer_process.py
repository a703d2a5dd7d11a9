"""Group commit in a writer process: the database work runs beside the receiver, not inside it.

A writer thread in the receiver's process shares the interpreter lock with the event loop: every
database call hands the lock back and forth, and on a busy host each hand-over waits for the
operating system to schedule the other thread. A writer *process* has its own interpreter, so
the event loop never waits for it. The loop talks to it over a socket pair without any thread:
events appended during one loop iteration go out as one frame, the writer commits everything
that has arrived (one transaction, one fsync) and answers with one frame of results, which
resolves the waiting requests. 2xx is still only answered after the writer reports the commit.

The writer process is started on the first delivery (one per event loop, so one per receiver
worker process) and exits when the receiver closes the socket or dies (end of file), after
finishing the batch in hand. While idle it also checks every second that the receiver is still
its parent: a process forked from the receiver would hold a copy of the socket, and the end of
file would then never come. If it dies, the waiting requests get 503 and the next delivery
starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time

from airflow_provider_iterable.event_queue import EventQueue, NewEvent, QueueUnavailableError
from airflow_provider_iterable.exceptions import WriterProcessError
from airflow_provider_iterable.webhooks import _wire
from airflow_provider_iterable.webhooks._wire import QUEUE_URL_ENV
from airflow_provider_iterable.webhooks.writer import LocalQueue

__all__ = ["QUEUE_URL_ENV", "RESPAWN_INTERVAL", "ProcessWriter"]

#: How the writer process is started: a line for ``python -c`` (the tests start it so too),
#: running :func:`airflow_provider_iterable.webhooks.writer_process_main.main`.
_CHILD_CODE = (
    "import sys; from airflow_provider_iterable.webhooks.writer_process_main import main; sys.exit(main())"
)

#: Least seconds between two starts of the writer process of one event loop.
RESPAWN_INTERVAL = 1.0


class _Channel:
    """One writer process and the socket to it, used from one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, args: list[str], queue_url: str | None) -> None:
        self.loop = loop
        self._args = args
        self._queue_url = queue_url
        self._pending: dict[int, asyncio.Future[tuple[int, bool]]] = {}
        self._outbox: list[tuple[int, NewEvent]] = []
        self._flush_scheduled = False
        self._next_id = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.alive = False
        self.opened_at = time.monotonic()

    async def open(self) -> None:
        parent, child = socket.socketpair()
        env = None if self._queue_url is None else {**os.environ, QUEUE_URL_ENV: self._queue_url}
        try:
            self.proc = subprocess.Popen(
                # The pid is taken now, not when the writer was built: a server may build the app
                # in one process and serve it from processes forked from that one.
                [*self._args, "--fd", str(child.fileno()), "--parent-pid", str(os.getpid())],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                close_fds=True,
                env=env,
            )
        finally:
            child.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent)
        self._writer = writer
        self.alive = True
        self._reader_task = self.loop.create_task(self._read_results(reader))

    async def append(self, event: NewEvent) -> tuple[int, bool]:
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[tuple[int, bool]] = self.loop.create_future()
        self._pending[request_id] = future
        self._outbox.append((request_id, event))
        if not self._flush_scheduled:
            # Everything appended in this loop iteration goes out as one frame.
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._outbox:
            return
        batch, self._outbox = self._outbox, []
        if not self.alive or self._writer is None:
            self._fail([request_id for request_id, _ in batch], "the event queue writer is not running")
            return
        self._writer.write(_wire.frame(batch))

    async def _read_results(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (size,) = _wire.HEADER.unpack(await reader.readexactly(_wire.HEADER.size))
                results = _wire.decode(await reader.readexactly(size))
                for request_id, value, error in results:
                    future = self._pending.pop(request_id, None)
                    if future is None or future.done():
                        continue
                    if error is None:
                        future.set_result(value)
                    elif error[0] == _wire.UNAVAILABLE:
                        future.set_exception(QueueUnavailableError(error[1]))
                    else:
                        future.set_exception(WriterProcessError(error[1]))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.alive = False
            self._fail(list(self._pending), "the event queue writer exited before answering")

    def _fail(self, request_ids: list[int], message: str) -> None:
        for request_id in request_ids:
            future = self._pending.pop(request_id, None)
            if future is not None and not future.done():
                future.set_exception(QueueUnavailableError(message))

    async def close(self, timeout: float) -> None:
        """Close the socket (the writer finishes its batch and exits) and wait for the process."""
        self._flush()
        self.alive = False
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self.proc is not None:
            try:
                await asyncio.to_thread(self.proc.wait, timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(BaseException):
                await self._reader_task


class ProcessWriter:
    """Store events in batches in a writer process (see the module docstring).

    Same interface as :class:`~airflow_provider_iterable.webhooks.writer.GroupCommitWriter`.

    :param queue_url: The queue the writer process stores to (``None``: ``[iterable] queue_url``).
    :param busy_timeout: Seconds a write waits for the queue's lock.
    :param dedupe_window_seconds: Passed to ``append_many``.
    :param max_batch: Most events in one transaction.
    :param quick_failure_seconds: A batch that fails faster than this is retried once.
    """

    def __init__(
        self,
        queue_url: str | None,
        *,
        busy_timeout: float,
        dedupe_window_seconds: float,
        max_batch: int = 512,
        quick_failure_seconds: float = 1.0,
    ) -> None:
        # Health checks and purges read from this process; deliveries go to the writer process.
        self._local = LocalQueue(lambda: EventQueue(queue_url, busy_timeout=busy_timeout))
        self._queue_url = queue_url
        self._args = [
            sys.executable,
            "-c",
            _CHILD_CODE,
            "--busy-timeout",
            repr(busy_timeout),
            "--dedupe-window",
            repr(dedupe_window_seconds),
            "--max-batch",
            str(max_batch),
            "--quick-failure",
            repr(quick_failure_seconds),
        ]
        self._channels: dict[asyncio.AbstractEventLoop, _Channel] = {}
        self._opening: dict[asyncio.AbstractEventLoop, asyncio.Future[_Channel]] = {}
        self._stopped = False

    def start(self) -> None:
        """Nothing to do: the writer process starts with the first delivery."""

    async def append(self, event: NewEvent) -> tuple[int, bool]:
        """Store ``event`` durably and return ``(event id, newly stored)``.

        :param event: The classified delivery.
        :raises QueueUnavailableError: When the queue cannot commit or the writer died.
        """
        if self._stopped:
            raise QueueUnavailableError("the receiver is shutting down")
        return await (await self._channel()).append(event)

    async def _channel(self) -> _Channel:
        loop = asyncio.get_running_loop()
        channel = self._channels.get(loop)
        if channel is not None and channel.alive:
            return channel
        if channel is not None:
            if channel.proc is not None:
                channel.proc.poll()  # reap the writer that died, so it leaves no zombie
            if time.monotonic() < channel.opened_at + RESPAWN_INTERVAL:
                # A writer that cannot stay up (a broken installation, no memory) is not
                # restarted for every delivery: they get 503 until the interval has passed.
                raise QueueUnavailableError("the event queue writer exited; restarting it shortly")
        opening = self._opening.get(loop)
        if opening is not None:
            return await asyncio.shield(opening)
        future: asyncio.Future[_Channel] = loop.create_future()
        self._opening[loop] = future
        try:
            channel = _Channel(loop, self._args, self._queue_url)
            await channel.open()
            self._channels[loop] = channel
            future.set_result(channel)
            return channel
        except BaseException as exc:
            future.set_exception(QueueUnavailableError(f"cannot start the event queue writer: {exc}"))
            future.exception()
            raise QueueUnavailableError(f"cannot start the event queue writer: {type(exc).__name__}") from exc
        finally:
            self._opening.pop(loop, None)

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop the writer process of the running loop after it stored what it was sent.

        :param timeout: Seconds to wait for the process to exit before killing it.
        """
        channel = self._channels.pop(asyncio.get_running_loop(), None)
        if channel is not None:
            await channel.close(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse new events, end writer processes of other loops, close the local queue.

        :param timeout: Seconds to wait for each process.
        """
        self._stopped = True
        for channel in list(self._channels.values()):
            if channel.proc is not None and channel.proc.poll() is None:
                # That loop is gone or elsewhere: closing the process's socket from here is not
                # possible, so ask it to stop; it finishes the batch in hand first (SIGTERM below
                # is handled after the current commit).
                channel.proc.terminate()
                try:
                    channel.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    channel.proc.kill()
        self._channels.clear()
        self._local.close()

    def queue(self) -> EventQueue:
        """Return a queue in this process for health checks and purges (blocking).

        :raises QueueUnavailableError: When the queue cannot be opened.
        """
        return self._local.get()
