"""Streaming, batching and result merging shared by the bulk operators.

A bulk input (users, list subscribers, events) is either a list given to the operator (or an XCom
holding one) or a file read as a stream: a local path or any URI Airflow's ``ObjectStoragePath``
opens (``file://``, ``s3://``, ``gs://``, ...), in JSON Lines or CSV, optionally gzip-compressed.
The file is read twice, each time as a stream: a first pass checks every record (so a malformed
line fails the task before anything is sent) and counts them (for progress logging); the second
pass sends. Memory stays flat in the size of the input: at most a few batches are held at a time.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, ClassVar

from airflow.sdk import Context, ObjectStoragePath
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_iterable.operators._base import (
    IterableBaseOperator,
    fail,
    iterable_date_text,
    parse_datetime,
)

#: Iterable's common practice for bulk calls: 1,000 records per request.
DEFAULT_BATCH_SIZE = 1000
#: Iterable refuses bodies over 4 MB (``BatchTooLarge``); stay under it with room to spare.
DEFAULT_MAX_BATCH_BYTES = 4_000_000
#: Identifiers kept per ``failedUpdates`` list in the XCom summary (the full count is kept too).
DEFAULT_FAILED_IDS_CAP = 1000
#: Requests of one bulk task awaiting their answers at once.
DEFAULT_MAX_IN_FLIGHT = 4
#: Bytes reserved for the request envelope around the items (``{"users": [...], ...}``).
_ENVELOPE_BYTES = 512

FILE_FORMATS = ("jsonl", "csv")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
FIELD_TYPES = ("str", "int", "float", "bool", "date")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


@dataclass(frozen=True)
class ItemShape:
    """How one kind of bulk record looks and which CSV columns are top-level fields.

    :param noun: what one record is, for messages (``"user"``, ``"subscriber"``, ``"event"``).
    :param columns: CSV columns that are top-level fields, with their type; every other
        non-empty cell goes into ``dataFields``.
    :param required: top-level fields every record must carry (besides ``email``/``userId``).
    :param allow_bare_email: whether a bare string is accepted as ``{"email": <string>}``.
    """

    noun: str
    columns: Mapping[str, str]
    required: tuple[str, ...] = ()
    allow_bare_email: bool = False


USER_SHAPE = ItemShape("user", {"email": "str", "userId": "str"})
SUBSCRIBER_SHAPE = ItemShape("subscriber", {"email": "str", "userId": "str"}, allow_bare_email=True)
EVENT_SHAPE = ItemShape(
    "event",
    {
        "email": "str",
        "userId": "str",
        "eventName": "str",
        "id": "str",
        "createdAt": "int",
        "campaignId": "int",
        "templateId": "int",
    },
    required=("eventName",),
)


# ---------------------------------------------------------------------------------------------
# Record checks
# ---------------------------------------------------------------------------------------------


def check_item(item: Any, shape: ItemShape, where: str) -> dict[str, Any]:
    """Return ``item`` as an Iterable-shaped record or raise ``AirflowFailException`` naming ``where``.

    Iterable answers a whole bulk request with 400 when one record has no identity, so that is
    checked here, before anything is sent. Malformed e-mail addresses are left to Iterable, which
    reports them per record (``failedUpdates.invalidEmails``).

    :param item: one record as given (a dict, or a bare e-mail string where allowed).
    :param shape: the kind of record.
    :param where: where it came from, e.g. ``"users[3]"`` or ``"users_file line 17"``.
    """
    if isinstance(item, str) and shape.allow_bare_email:
        text = item.strip()
        if not text:
            raise fail(f"{where}: empty e-mail address")
        return {"email": text}
    if not isinstance(item, Mapping):
        bare = " or an e-mail address string" if shape.allow_bare_email else ""
        raise fail(
            f"{where}: a {shape.noun} must be a JSON object{bare} such as "
            f'{{"email": "ada@example.com", "dataFields": {{...}}}}, got {type(item).__name__}'
        )
    record = item if isinstance(item, dict) else dict(item)
    email, user_id = record.get("email"), record.get("userId")
    if not (isinstance(email, str) and email) and not (isinstance(user_id, str) and user_id):
        raise fail(f'{where}: the {shape.noun} has neither "email" nor "userId" (a non-empty string)')
    for field in shape.required:
        value = record.get(field)
        if not (isinstance(value, str) and value):
            raise fail(f'{where}: the {shape.noun} has no "{field}" (a non-empty string)')
    data_fields = record.get("dataFields")
    if data_fields is not None and not isinstance(data_fields, Mapping):
        raise fail(f'{where}: "dataFields" must be a JSON object, got {type(data_fields).__name__}')
    return record


def check_field_types(field_types: Any) -> dict[str, str]:
    """Return ``field_types`` (CSV column → type) or fail naming the column and the allowed types."""
    if field_types is None:
        return {}
    if not isinstance(field_types, Mapping):
        raise fail(f"field_types must be a dict of CSV column -> one of {', '.join(FIELD_TYPES)}")
    out: dict[str, str] = {}
    for column, kind in field_types.items():
        name = str(kind).strip().lower()
        name = {"string": "str", "integer": "int", "long": "int", "double": "float", "boolean": "bool"}.get(
            name, name
        )
        if name not in FIELD_TYPES:
            raise fail(
                f"field_types[{column!r}] is {kind!r}; use one of {', '.join(FIELD_TYPES)} "
                "(cells of columns not listed are sent as strings)"
            )
        out[str(column)] = name
    return out


def _convert_cell(text: str, kind: str, where: str, column: str) -> Any:
    if kind == "str":
        return text
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            value = float(text)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(text)
            return value
        if kind == "bool":
            low = text.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(text)
        if kind == "date":
            moment = parse_datetime(text, f"{where} column {column!r}")
            assert isinstance(moment, datetime)
            return iterable_date_text(moment)
    except (ValueError, AirflowFailException):
        pass
    hint = {
        "int": "a whole number",
        "float": "a number",
        "bool": "true/false, yes/no or 1/0",
        "date": "an ISO-8601 date such as 2026-11-27 or 2026-11-27T09:30:00Z",
    }[kind]
    raise fail(
        f"{where}: column {column!r} is typed {kind} in field_types but holds {text!r}; expected {hint}"
    )


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def resolve_format(path: str, file_format: Any, param: str) -> str:
    """Return ``"jsonl"`` or ``"csv"`` from ``file_format`` or the file's extension."""
    if file_format is not None and str(file_format).strip():
        name = str(file_format).strip().lower()
        name = {"ndjson": "jsonl", "json_lines": "jsonl", "jsonlines": "jsonl"}.get(name, name)
        if name not in FILE_FORMATS:
            raise fail(f"file_format is {file_format!r}; use 'jsonl' (JSON Lines) or 'csv'")
        return name
    lowered = path.lower()
    if lowered.endswith(".gz"):
        lowered = lowered[:-3]
    for ext, name in _EXTENSIONS.items():
        if lowered.endswith(ext):
            return name
    raise fail(
        f"{param} {path!r}: cannot tell the format from the extension; name the file *.jsonl or "
        "*.csv (optionally .gz), or set file_format='jsonl' or 'csv'"
    )


def file_path_text(value: Any, param: str) -> str:
    """Return the rendered file argument as a string path/URI or fail naming ``param``."""
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if isinstance(text, str) and text.strip():
            return text.strip()
    raise fail(
        f"{param} must be a path or URI such as /data/users.jsonl or s3://bucket/users.csv, got {value!r}"
    )


@contextmanager
def open_text(path: str, param: str) -> Iterator[IO[str]]:
    """Open a local path or object-storage URI for streaming text reads (gzip by extension)."""
    try:
        raw: IO[bytes] = ObjectStoragePath(path).open("rb")
    except Exception as exc:  # any backend: missing file, no permission, unknown scheme, no creds
        raise fail(f"{param} {path!r} cannot be opened: {type(exc).__name__}: {exc}") from exc
    try:
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if path.lower().endswith(".gz") else raw  # type: ignore[assignment]
        # utf-8-sig drops the byte-order mark spreadsheet programs put in front of CSV exports.
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")  # type: ignore[type-var]
        yield text
    finally:
        raw.close()


def _jsonl_records(handle: IO[str], param: str) -> Iterator[tuple[str, Any, int]]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            yield f"{param} line {number}", json.loads(line), len(line)
        except ValueError as exc:
            raise fail(
                f"{param} line {number} is not valid JSON ({exc}); expected one JSON object per line"
            ) from None


def _csv_records(
    handle: IO[str], param: str, shape: ItemShape, field_types: Mapping[str, str]
) -> Iterator[tuple[str, Any, int]]:
    reader = csv.reader(handle)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise fail(f"{param} line 1 is not valid CSV: {exc}") from None
    header = [name.strip() for name in header]
    if "email" not in header and "userId" not in header:
        raise fail(f"{param} line 1: the CSV header needs an 'email' or 'userId' column, got {header}")
    if len(set(header)) != len(header):
        raise fail(f"{param} line 1: the CSV header repeats a column name: {header}")
    unknown = sorted(set(field_types) - set(header))
    if unknown:
        raise fail(f"field_types names columns the CSV header does not have: {unknown}; header: {header}")
    top = [
        (i, name, field_types.get(name, shape.columns[name]))
        for i, name in enumerate(header)
        if name in shape.columns
    ]
    rest = [
        (i, name, field_types.get(name, "str")) for i, name in enumerate(header) if name not in shape.columns
    ]
    width = len(header)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise fail(f"{param} line {reader.line_num} is not valid CSV: {exc}") from None
        where = f"{param} line {reader.line_num}"
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) > width:
            raise fail(f"{where} has {len(row)} cells but the header has {width} columns")
        record: dict[str, Any] = {}
        for i, name, kind in top:
            if i < len(row) and row[i] != "":
                record[name] = _convert_cell(row[i], kind, where, name)
        data: dict[str, Any] = {}
        for i, name, kind in rest:
            if i < len(row) and row[i] != "":
                data[name] = _convert_cell(row[i], kind, where, name)
        if data:
            record["dataFields"] = data
        yield where, record, sum(len(cell) for cell in row) + 8 * len(row)


@dataclass(frozen=True)
class FileSource:
    """A bulk input file: where it is, its format and, for CSV, the column types."""

    path: str
    file_format: str
    param: str
    field_types: Mapping[str, str]

    def records(self, shape: ItemShape) -> Iterator[tuple[str, dict[str, Any], int]]:
        """Yield ``(where, record, raw_length)`` for every checked record, streaming."""
        with open_text(self.path, self.param) as handle:
            raw = (
                _jsonl_records(handle, self.param)
                if self.file_format == "jsonl"
                else _csv_records(handle, self.param, shape, self.field_types)
            )
            try:
                for where, value, length in raw:
                    yield where, check_item(value, shape, where), length
            except UnicodeDecodeError as exc:
                raise fail(f"{self.param} {self.path!r} is not UTF-8 text: {exc}") from None
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise fail(
                    f"{self.param} {self.path!r} could not be read: {type(exc).__name__}: {exc}"
                ) from exc


# ---------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------


def item_size(item: Mapping[str, Any]) -> int:
    """Return an upper bound of the bytes one record takes in a request body.

    ``json.dumps`` with its defaults (``", "`` separators, non-ASCII escaped as ``\\uXXXX``) is at
    least as long as any UTF-8 serialisation an HTTP client would send.
    """
    return len(json.dumps(item))


def check_item_fits(item: Mapping[str, Any], raw_length: int | None, max_bytes: int, where: str) -> None:
    """Fail before sending anything when one record alone is larger than a request may be."""
    budget = max_bytes - _ENVELOPE_BYTES
    # A raw text record escapes to at most 6 bytes per character; only long ones are measured.
    if raw_length is not None and raw_length * 6 < budget:
        return
    size = item_size(item)
    if size > budget:
        raise fail(
            f"{where}: this record alone is {size:,} bytes of JSON, more than max_batch_bytes "
            f"({max_bytes:,}, less {_ENVELOPE_BYTES} for the request envelope) allows in one request"
        )


def batches(
    items: Iterable[dict[str, Any]], *, max_count: int, max_bytes: int
) -> Iterator[list[dict[str, Any]]]:
    """Group ``items`` into lists of at most ``max_count`` items whose JSON stays under ``max_bytes``.

    :param items: the records, streamed.
    :param max_count: most records per batch.
    :param max_bytes: most bytes per request body (the envelope is accounted for).
    """
    budget = max_bytes - _ENVELOPE_BYTES
    batch: list[dict[str, Any]] = []
    size = 0
    for item in items:
        item_bytes = item_size(item) + 2  # ", " between items
        if batch and (len(batch) >= max_count or size + item_bytes > budget):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_bytes
    if batch:
        yield batch


_DONE = object()


def prefetch(source: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Iterate ``source`` in a background thread, ``depth`` items ahead.

    Parsing the next batch overlaps with waiting for Iterable's answer to the current one, which
    matters when the rate limit allows a batch every few tens of milliseconds. The bounded queue
    keeps memory flat. An exception in the reader is re-raised here.
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def _put(value: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run() -> None:
        try:
            for value in source:
                if not _put(value):
                    break
            else:
                _put(_DONE)
        except BaseException as exc:
            _put(exc)
        finally:
            # Close the reader's generator (and with it the input file) in the thread that runs it.
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=_run, name="iterable-bulk-reader", daemon=True)
    thread.start()
    try:
        while True:
            value = buffer.get()
            if value is _DONE:
                return
            if isinstance(value, BaseException):
                raise value
            yield value
    finally:
        stop.set()
        thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


class BulkSummary:
    """Merge Iterable's bulk answers (one per batch) into one JSON-serialisable summary.

    :param failed_ids_cap: identifiers kept per ``failedUpdates`` list; the full count of each is
        kept in ``failedUpdateCounts``.
    :param events: whether the answers are ``events/trackBulk`` answers (``disallowedEventNames``).
    """

    def __init__(self, *, failed_ids_cap: int = DEFAULT_FAILED_IDS_CAP, events: bool = False) -> None:
        self.cap = failed_ids_cap
        self.events = events
        self.batches = 0
        self.items = 0
        self.success_count = 0
        self.fail_count = 0
        self.failed: dict[str, list[str]] = {}
        self.failed_counts: dict[str, int] = {}
        self.created: dict[str, None] = {}
        self.filtered: dict[str, None] = {}
        self.disallowed: dict[str, None] = {}

    def add(self, answer: Any, sent: int) -> None:
        """Fold one batch's answer in.

        :param answer: Iterable's answer to one bulk request.
        :param sent: how many records that request carried.
        """
        self.batches += 1
        self.items += sent
        if not isinstance(answer, Mapping):
            return
        self.success_count += _count(answer.get("successCount"))
        self.fail_count += _count(answer.get("failCount"))
        failed = answer.get("failedUpdates")
        if not isinstance(failed, Mapping) or not failed:
            # Older answers carry only the deprecated top-level lists.
            failed = {k: answer[k] for k in ("invalidEmails", "invalidUserIds") if k in answer}
        for reason, ids in failed.items():
            if not isinstance(ids, list) or not ids:
                continue
            self.failed_counts[reason] = self.failed_counts.get(reason, 0) + len(ids)
            kept = self.failed.setdefault(reason, [])
            room = self.cap - len(kept)
            if room > 0:
                kept.extend(str(i) for i in ids[:room])
        for key, target in (
            ("createdFields", self.created),
            ("filteredOutFields", self.filtered),
            ("disallowedEventNames", self.disallowed),
        ):
            values = answer.get(key)
            if isinstance(values, list):
                target.update(dict.fromkeys(str(v) for v in values))

    @property
    def has_failures(self) -> bool:
        """Return whether any record failed (or, for events, any name was disallowed)."""
        return self.fail_count > 0 or bool(self.failed_counts) or bool(self.disallowed)

    def to_dict(self) -> dict[str, Any]:
        """Return the XCom summary."""
        out: dict[str, Any] = {
            "batches": self.batches,
            "successCount": self.success_count,
            "failCount": self.fail_count,
            "failedUpdates": {k: list(v) for k, v in self.failed.items()},
            "failedUpdateCounts": dict(self.failed_counts),
            "createdFields": list(self.created),
            "filteredOutFields": list(self.filtered),
        }
        if self.events:
            out["disallowedEventNames"] = list(self.disallowed)
        return out

    def failure_text(self, noun: str) -> str:
        """Return a sentence saying how many records failed and why (a few identifiers as examples)."""
        reasons = []
        for reason, count in sorted(self.failed_counts.items(), key=lambda kv: -kv[1]):
            examples = ", ".join(self.failed.get(reason, [])[:3])
            more = ", ..." if count > 3 else ""
            reasons.append(f"{reason}: {count} ({examples}{more})")
        text = (
            f"{self.fail_count:,} of {self.items:,} {noun}s failed in Iterable "
            f"after all {self.batches} batches were sent"
        )
        if reasons:
            text += "; " + "; ".join(reasons)
        elif self.fail_count and not self.disallowed:
            text += " (Iterable gave no per-record detail)"
        if self.disallowed:
            text += f"; disallowed event names: {', '.join(self.disallowed)}"
        return text + ". The full summary is in this task's XCom (return_value)."


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class Progress:
    """Log bulk progress every few batches: records sent of the total, and the rate.

    :param log: the task's logger.
    :param noun: what a record is (``"user"``).
    :param total: how many records will be sent.
    :param every: log every this many batches (and at the end).
    :param clock: monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        log: logging.Logger | Any,
        noun: str,
        total: int,
        *,
        every: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.noun = noun
        self.total = total
        self.every = max(1, every)
        self.clock = clock
        self.started = clock()
        self.sent = 0
        self.batches = 0

    def batch_sent(self, size: int, *, final: bool = False) -> None:
        """Count one batch of ``size`` records; log when due."""
        self.sent += size
        self.batches += 1
        if final or self.batches == 1 or self.batches % self.every == 0 or self.sent >= self.total:
            elapsed = max(self.clock() - self.started, 1e-9)
            self.log.info(
                "Sent %d of %d %ss in %d batches (%.0f %ss/s)",
                self.sent,
                self.total,
                self.noun,
                self.batches,
                self.sent / elapsed,
                self.noun,
            )


def _whole_number(value: Any, name: str, minimum: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise fail(f"{name} must be a whole number of at least {minimum}{hint}, got {value!r}")
    return value


def list_items(value: Any, param: str) -> Sequence[Any]:
    """Return an in-memory bulk input (a list, or a JSON list rendered from a template)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise fail(
                f"{param} must be a list of records (or a JSON list), got a string that is not JSON"
            ) from None
    if isinstance(value, Mapping) or not isinstance(value, (list, tuple)):
        raise fail(
            f"{param} must be a list of records such as [{{'email': ...}}], got {type(value).__name__}"
        )
    return value


# ---------------------------------------------------------------------------------------------
# The bulk operator
# ---------------------------------------------------------------------------------------------


class IterableBulkBaseOperator(IterableBaseOperator):
    """Stream records from a list or a file to a bulk endpoint in bounded batches.

    Subclasses name their input parameters (``items_param``/``file_param``), the record shape and
    implement :meth:`_send_batch` (one hook call). Argument and input errors fail the task before
    the first request; record-level failures Iterable reports are merged into the summary and,
    with ``fail_on_partial_failure``, fail the task once everything was sent.

    :param file_format: ``"jsonl"`` or ``"csv"``; by default taken from the file's extension
        (``.jsonl``/``.ndjson``/``.csv``, optionally followed by ``.gz``).
    :param field_types: for CSV input, column → ``"int"``, ``"float"``, ``"bool"``, ``"date"`` or
        ``"str"``. Cells of columns not listed are sent as strings (no guessing: Iterable fixes a
        field's type the first time it sees it). Dates are sent as ``yyyy-MM-dd HH:mm:ss +00:00``.
    :param batch_size: most records per request (default 1,000).
    :param max_batch_bytes: most bytes of JSON per request (default 4,000,000; Iterable refuses
        bodies over 4 MB).
    :param fail_on_partial_failure: raise ``AirflowFailException`` after the whole input was sent
        when Iterable reported any record as failed (default ``True``). The summary is pushed to
        XCom (``return_value``) before raising, so a cleanup task can read it.
    :param failed_ids_cap: identifiers kept per ``failedUpdates`` list in the XCom summary
        (default 1,000); ``failedUpdateCounts`` has the full counts.
    :param log_every_batches: log progress every this many batches (default 10).
    :param max_in_flight: most requests awaiting an answer at once (default 4). Requests still
        start no faster than the connection's rate limit; overlapping them keeps a slow answer
        (Iterable can take a second for 1,000 users) from lowering the rate below the limit.
        With more than one, batches may be applied in a different order than read; use 1 when
        the input holds the same user more than once and the last line must win.
    """

    shape: ClassVar[ItemShape] = USER_SHAPE
    items_param: ClassVar[str] = "users"
    file_param: ClassVar[str] = "users_file"
    summarise_events: ClassVar[bool] = False

    def __init__(
        self,
        *,
        file_format: str | None = None,
        field_types: Mapping[str, str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        fail_on_partial_failure: bool = True,
        failed_ids_cap: int = DEFAULT_FAILED_IDS_CAP,
        log_every_batches: int = 10,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_in_flight = max_in_flight
        self.file_format = file_format
        self.field_types = field_types
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.fail_on_partial_failure = fail_on_partial_failure
        self.failed_ids_cap = failed_ids_cap
        self.log_every_batches = log_every_batches

    # -- what subclasses provide ---------------------------------------------------------------

    def _prepare(self, context: Context) -> None:
        """Check the subclass's own arguments (before reading input or sending anything)."""

    def _transform(self, record: dict[str, Any], index: int) -> dict[str, Any]:
        """Adjust one checked record before it is batched (e.g. give an event an id)."""
        return record

    def _send_batch(self, batch: list[dict[str, Any]]) -> Any:
        """Send one batch; return Iterable's bulk answer."""
        raise NotImplementedError

    # -- the common part ---------------------------------------------------------------------

    def _limits(self) -> tuple[int, int, int]:
        """Return ``(batch_size, max_batch_bytes, max_in_flight)``, checked."""
        return (
            _whole_number(self.batch_size, "batch_size", 1, " (Iterable's practice: 1000)"),
            _whole_number(self.max_batch_bytes, "max_batch_bytes", 2 * _ENVELOPE_BYTES),
            _whole_number(self.max_in_flight, "max_in_flight", 1),
        )

    def _input(self) -> tuple[Sequence[Any] | None, FileSource | None]:
        items = getattr(self, self.items_param)
        path = getattr(self, self.file_param)
        has_items = items is not None
        has_file = path is not None and not (isinstance(path, str) and not path.strip())
        if has_items == has_file:
            which = "both were" if has_items else "neither was"
            raise fail(
                f"Set exactly one of {self.items_param} (a list of {self.shape.noun}s, or an XCom of one) "
                f"or {self.file_param} (a JSON Lines or CSV file); {which} given"
            )
        if has_items:
            return list_items(items, self.items_param), None
        text = file_path_text(path, self.file_param)
        source = FileSource(
            path=text,
            file_format=resolve_format(text, self.file_format, self.file_param),
            param=self.file_param,
            field_types=check_field_types(self.field_types),
        )
        if source.file_format != "csv" and source.field_types:
            raise fail("field_types applies to CSV input only; JSON Lines records carry their own types")
        return None, source

    def execute(self, context: Context) -> dict[str, Any]:
        """Check everything, then send the records in batches and return the merged summary."""
        max_count, max_bytes, in_flight = self._limits()
        self._prepare(context)
        items, source = self._input()
        noun = self.shape.noun

        # First pass: check every record (and count them) before the first request.
        records: Iterator[dict[str, Any]]
        if source is not None:
            total = 0
            for where, record, raw_length in source.records(self.shape):
                check_item_fits(record, raw_length, max_bytes, where)
                total += 1
            self.log.info("%s: %d %ss to send (%s)", self.file_param, total, noun, source.file_format)
            records = (record for _, record, _ in source.records(self.shape))
        else:
            assert items is not None
            checked = []
            for index, item in enumerate(items):
                where = f"{self.items_param}[{index}]"
                record = check_item(item, self.shape, where)
                check_item_fits(record, None, max_bytes, where)
                checked.append(record)
            total = len(checked)
            records = iter(checked)
        if total == 0:
            self.log.warning("No %ss to send: the input is empty", noun)

        transformed = (self._transform(record, index) for index, record in enumerate(records))
        summary = BulkSummary(failed_ids_cap=self.failed_ids_cap, events=self.summarise_events)
        progress = Progress(self.log, noun, total, every=self.log_every_batches)
        # Build the hook and load its connection here, once, rather than in the sending threads;
        # a connection that cannot be used fails the task before the first request.
        with self._iterable_errors("loading the connection"):
            base_url = self.hook.base_url
        self.log.info("Sending %d %ss to %s", total, noun, base_url)
        pending: deque[tuple[Future[Any], int, str]] = deque()

        def collect_oldest() -> None:
            future, size, action = pending.popleft()
            with self._iterable_errors(action):
                answer = future.result()
            summary.add(answer, size)
            progress.batch_sent(size)

        # Requests start at the pace of the hook's rate limiter; up to ``max_in_flight`` of them
        # await their answers at once, so a slow answer does not cost the next request its slot.
        # On an error the requests already in flight finish (the pool waits) before it is raised.
        with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="iterable-bulk") as pool:
            queued = 0
            for number, batch in enumerate(
                prefetch(batches(transformed, max_count=max_count, max_bytes=max_bytes)), start=1
            ):
                if len(pending) >= in_flight:
                    collect_oldest()
                first, queued = queued + 1, queued + len(batch)
                action = f"sending {noun}s {first}-{queued} of {total} (batch {number})"
                pending.append((pool.submit(self._send_batch, batch), len(batch), action))
            while pending:
                collect_oldest()

        result = summary.to_dict()
        if summary.has_failures:
            message = summary.failure_text(noun)
            if self.fail_on_partial_failure:
                ti = context.get("ti")
                if ti is not None:
                    ti.xcom_push(key="return_value", value=result)
                raise AirflowFailException(message)
            self.log.warning("%s", message)
        return result
