"""What a SQLite queue implies for the deployment, said once where it helps.

A SQLite queue serves one host. The receiver (at its start) and the triggerer (when a trigger
first opens the queue) call :func:`notice_backend`; command-line tools do not, so their output
stays clean.
"""

from __future__ import annotations

import logging
import os
import threading

from airflow_provider_iterable.event_queue.schema import sqlite_path

log = logging.getLogger("airflow_provider_iterable.event_queue")

# Filesystem types on which SQLite's locking (and WAL's shared memory) is not reliable, or which
# suggest the file is shared between hosts.
_NETWORK_FS_PREFIXES = ("nfs", "cifs", "smb", "fuse", "9p", "ceph", "glusterfs", "afs", "lustre", "gpfs")

_notice_lock = threading.Lock()
_noticed: set[str] = set()


def _mount_fstype(path: str, mounts_file: str) -> str | None:
    """Return the filesystem type of the mount holding ``path``, from a ``/proc/mounts`` table."""
    try:
        with open(mounts_file, encoding="utf-8") as handle:
            mounts = [line.split() for line in handle]
    except OSError:
        return None
    target = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for fields in mounts:
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) > best[0]):
            best = (len(mount_point), fields[2])
    return best[1] if best else None


def network_filesystem(path: str, mounts_file: str = "/proc/mounts") -> str | None:
    """Return the filesystem type when ``path`` is on a network/FUSE filesystem, else ``None``.

    :param path: A file (need not exist yet: its directory is looked up).
    :param mounts_file: The mount table to read (Linux's ``/proc/mounts``; elsewhere absent, and
        then nothing is detected).
    """
    fstype = _mount_fstype(os.path.dirname(os.path.abspath(path)) or ".", mounts_file)
    if fstype and fstype.lower().startswith(_NETWORK_FS_PREFIXES):
        return fstype
    return None


def notice_backend(url: str) -> None:
    """Log once per process and queue what a SQLite queue implies for the deployment.

    :param url: The queue URL (nothing is said for PostgreSQL).
    """
    path = sqlite_path(url)
    if path is None:
        return
    with _notice_lock:
        if url in _noticed:
            return
        _noticed.add(url)
    fstype = network_filesystem(path)
    if fstype:
        log.warning(
            "The webhook event queue is the SQLite file %s on a %s filesystem. SQLite's locks are "
            "not reliable there and a SQLite queue serves one host only: when the receiver and the "
            "triggerer run on different machines, set [iterable] queue_url to a PostgreSQL "
            "database (postgresql+psycopg://...).",
            path,
            fstype,
        )
    else:
        log.info(
            "The webhook event queue is the SQLite file %s: it serves one host only (receiver and "
            "triggerer on this machine). Set [iterable] queue_url to a PostgreSQL database when "
            "they run on several machines.",
            path,
        )


__all__ = ["network_filesystem", "notice_backend"]
