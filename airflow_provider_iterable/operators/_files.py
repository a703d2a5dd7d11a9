"""Bulk input files: opening a local path or object-storage URI, and reading JSON Lines or CSV.

A file is a local path or any URI Airflow's ``ObjectStoragePath`` opens (``file://``, ``s3://``,
``gs://``, ...), in JSON Lines or CSV, optionally gzip-compressed, and is read as a stream:
memory stays flat in its size. Readers yield ``(where, record, raw_length)``: where the record
came from (``"users_file line 17"``) for messages, the record, and the length of its text (so
the size check can skip measuring records too short to matter).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_iterable.exceptions import IterableConfigError
from airflow_provider_iterable.operators._base import fail
from airflow_provider_iterable.operators._records import ItemShape, check_item, convert_cell

FILE_FORMATS = ("jsonl", "csv")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_FORMAT_ALIASES = {"ndjson": "jsonl", "json_lines": "jsonl", "jsonlines": "jsonl"}


def resolve_format(path: str, file_format: Any, param: str) -> str:
    """Return ``"jsonl"`` or ``"csv"`` from ``file_format`` or the file's extension.

    :param path: the file's path or URI.
    :param file_format: the rendered ``file_format`` argument, or ``None`` to go by the extension.
    :param param: the parameter the path came from, for the message (``"users_file"``).
    """
    if file_format is not None and str(file_format).strip():
        name = str(file_format).strip().lower()
        name = _FORMAT_ALIASES.get(name, name)
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
    """Open a local path or object-storage URI for streaming text reads (gzip by extension).

    :param path: the file's path or URI; a name ending ``.gz`` is decompressed.
    :param param: the parameter it came from, for the message.
    """
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


def jsonl_records(handle: IO[str], param: str) -> Iterator[tuple[str, Any, int]]:
    """Yield ``(where, value, raw_length)`` for every non-blank line of a JSON Lines file.

    :param handle: the open text file.
    :param param: the parameter the file came from, for ``where`` and messages.
    """
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            yield f"{param} line {number}", json.loads(line), len(line)
        except ValueError as exc:
            raise fail(
                f"{param} line {number} is not valid JSON ({exc}); expected one JSON object per line"
            ) from None


def _not_valid_csv(param: str, line: int, exc: csv.Error) -> IterableConfigError:
    return fail(
        f"{param} line {line} is not valid CSV: {exc}; a quoted cell must close on the line it "
        "opens, and its closing quote must be followed by a comma or the end of the line"
    )


def _runs_past_its_line(param: str, line: int, last: int) -> IterableConfigError:
    return fail(
        f"{param} line {line}: a quoted cell runs past the end of its line (on to line {last}); "
        "is a closing quote missing? CSV cells may not hold line breaks, because a cell left "
        "open by mistake would silently take in the lines after it. Replace the line breaks in "
        "that column, or give the file as JSON Lines, where a string holds them as \\n"
    )


def csv_records(
    handle: IO[str], param: str, shape: ItemShape, field_types: Mapping[str, str]
) -> Iterator[tuple[str, Any, int]]:
    """Yield ``(where, record, raw_length)`` for every non-blank row of a CSV file.

    The header names the columns; those of ``shape.columns`` become top-level fields, every
    other non-empty cell a ``dataFields`` entry, each converted to its ``field_types`` type.
    Parsing is strict: a row that is not valid CSV, or a quoted cell that runs past the end of
    its line, fails naming the line the row starts on. Cells spanning lines are refused because
    an unclosed quote looks exactly like one and would swallow the rows after it unseen.

    :param handle: the open text file (opened with ``newline=""``).
    :param param: the parameter the file came from, for ``where`` and messages.
    :param shape: the kind of record.
    :param field_types: column → one of ``FIELD_TYPES``, checked.
    """
    reader = csv.reader(handle, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise _not_valid_csv(param, 1, exc) from None
    if reader.line_num > 1:
        raise _runs_past_its_line(param, 1, reader.line_num)
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
        line = reader.line_num + 1  # the line this row starts on
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _not_valid_csv(param, line, exc) from None
        if reader.line_num > line:
            raise _runs_past_its_line(param, line, reader.line_num)
        where = f"{param} line {line}"
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) > width:
            raise fail(f"{where} has {len(row)} cells but the header has {width} columns")
        record: dict[str, Any] = {}
        for i, name, kind in top:
            if i < len(row) and row[i] != "":
                record[name] = convert_cell(row[i], kind, where, name)
        data: dict[str, Any] = {}
        for i, name, kind in rest:
            if i < len(row) and row[i] != "":
                data[name] = convert_cell(row[i], kind, where, name)
        if data:
            record["dataFields"] = data
        yield where, record, sum(len(cell) for cell in row) + 8 * len(row)


@dataclass(frozen=True)
class FileSource:
    """A bulk input file: where it is, its format and, for CSV, the column types.

    :param path: the file's path or URI.
    :param file_format: ``"jsonl"`` or ``"csv"``.
    :param param: the parameter it came from (``"users_file"``), for messages.
    :param field_types: CSV column → type, checked (empty for JSON Lines).
    """

    path: str
    file_format: str
    param: str
    field_types: Mapping[str, str]

    def records(self, shape: ItemShape) -> Iterator[tuple[str, dict[str, Any], int]]:
        """Yield ``(where, record, raw_length)`` for every checked record, streaming."""
        with open_text(self.path, self.param) as handle:
            raw = (
                jsonl_records(handle, self.param)
                if self.file_format == "jsonl"
                else csv_records(handle, self.param, shape, self.field_types)
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
