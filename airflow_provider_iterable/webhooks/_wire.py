"""The wire between a receiver and its writer process: length-prefixed pickled frames.

The receiver sends a frame holding a list of ``(request id, NewEvent)``; the writer answers with
a frame holding a list of ``(request id, (event id, stored) or None, error or None)``, where an
error is ``(UNAVAILABLE, message)`` (the store is down: 503) or ``(FAILED, exception type)``.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

HEADER = struct.Struct("!I")

#: The environment variable that hands the queue URL to the writer process. Not an argument:
#: any local user can read a process's command line, and the URL may hold a password; its
#: environment is readable by the same user only.
QUEUE_URL_ENV = "AIRFLOW_PROVIDER_ITERABLE_WRITER_QUEUE_URL"

#: Error kinds carried back from the writer process.
UNAVAILABLE = "unavailable"
FAILED = "failed"


def frame(obj: Any) -> bytes:
    """Return ``obj`` as one frame.

    :param obj: What to send; both ends are this package, so pickle carries ``NewEvent`` as it is.
    """
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def decode(data: bytes) -> Any:
    """Return what one frame's body (without its length prefix) holds.

    :param data: The frame's bytes after the header.
    """
    return pickle.loads(data)


def take_frames(buffer: bytearray) -> list[Any]:
    """Remove the complete frames from the front of ``buffer`` and return what they hold.

    :param buffer: Bytes received and not yet framed; a partial frame at its end stays there.
    """
    frames = []
    while len(buffer) >= HEADER.size:
        (size,) = HEADER.unpack_from(buffer)
        if len(buffer) < HEADER.size + size:
            break
        frames.append(decode(bytes(buffer[HEADER.size : HEADER.size + size])))
        del buffer[: HEADER.size + size]
    return frames
