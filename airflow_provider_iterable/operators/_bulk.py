"""The bulk operators' base: check the whole input, then send it in batches and report.

A bulk input (users, list subscribers, events) is either a list given to the operator (or an XCom
holding one) or a file read as a stream (see :mod:`~airflow_provider_iterable.operators._files`).
A file is read twice, each time as a stream: a first pass checks every record (so a malformed
line fails the task before anything is sent) and counts them (for progress logging); the second
pass sends. Memory stays flat in the size of the input: at most a few batches are held at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from airflow.sdk import Context

from airflow_provider_iterable.failures import IterableTaskFailedError
from airflow_provider_iterable.operators._base import IterableBaseOperator, fail
from airflow_provider_iterable.operators._batches import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_IN_FLIGHT,
    BatchLimits,
    BulkSender,
    check_item_fits,
)
from airflow_provider_iterable.operators._files import FileSource, file_path_text, resolve_format
from airflow_provider_iterable.operators._records import (
    USER_SHAPE,
    ItemShape,
    check_field_types,
    check_item,
    list_items,
)
from airflow_provider_iterable.operators._summary import DEFAULT_FAILED_IDS_CAP, BulkSummary


class IterableBulkBaseOperator(IterableBaseOperator):
    """Stream records from a list or a file to a bulk endpoint in bounded batches.

    Subclasses name their input parameters (``items_param``/``file_param``), the record shape and
    implement :meth:`_send_batch` (one hook call). Argument and input errors fail the task before
    the first request; record-level failures Iterable reports are merged into the summary and,
    with ``fail_on_partial_failure``, fail the task once everything was sent.

    :param file_format: ``"jsonl"`` or ``"csv"``; by default taken from the file's extension
        (``.jsonl``/``.ndjson``/``.csv``, optionally followed by ``.gz``).
    :param field_types: for CSV input, column → ``"int"``, ``"float"``, ``"bool"``, ``"date"`` or
        ``"str"`` (or ``"integer"``, ``"long"``, ``"double"``, ``"boolean"``, ``"string"``).
        Cells of columns not listed are sent as strings (no guessing: Iterable fixes a field's
        type the first time it sees it). Dates are sent as ``yyyy-MM-dd HH:mm:ss +00:00``.
        A CSV cell may not span lines (see :func:`~airflow_provider_iterable.operators._files.csv_records`).
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

    def _checked_records(
        self, items: Sequence[Any] | None, source: FileSource | None, max_bytes: int
    ) -> tuple[int, Iterator[dict[str, Any]]]:
        """Check every record (a first pass over a file) and return ``(count, records to send)``."""
        if source is not None:
            total = 0
            for where, record, raw_length in source.records(self.shape):
                check_item_fits(record, raw_length, max_bytes, where)
                total += 1
            self.log.info(
                "%s: %d %ss to send (%s)", self.file_param, total, self.shape.noun, source.file_format
            )
            return total, (record for _, record, _ in source.records(self.shape))
        assert items is not None
        checked = []
        for index, item in enumerate(items):
            where = f"{self.items_param}[{index}]"
            record = check_item(item, self.shape, where)
            check_item_fits(record, None, max_bytes, where)
            checked.append(record)
        return len(checked), iter(checked)

    def execute(self, context: Context) -> dict[str, Any]:
        """Check everything, then send the records in batches and return the merged summary."""
        limits = BatchLimits.checked(
            batch_size=self.batch_size,
            max_batch_bytes=self.max_batch_bytes,
            max_in_flight=self.max_in_flight,
        )
        self._prepare(context)
        items, source = self._input()
        noun = self.shape.noun
        total, records = self._checked_records(items, source, limits.max_bytes)
        if total == 0:
            self.log.warning("No %ss to send: the input is empty", noun)

        # Build the hook and load its connection here, once, rather than in the sending threads;
        # a connection that cannot be used fails the task before the first request.
        with self._iterable_errors("loading the connection"):
            base_url = self.hook.base_url
        self.log.info("Sending %d %ss to %s", total, noun, base_url)
        sender = BulkSender(
            self._send_batch,
            limits=limits,
            noun=noun,
            total=total,
            log=self.log,
            log_every_batches=self.log_every_batches,
            summary=BulkSummary(failed_ids_cap=self.failed_ids_cap, events=self.summarise_events),
            errors=self._iterable_errors,
        )
        summary = sender.send_all(self._transform(record, index) for index, record in enumerate(records))

        result = summary.to_dict()
        if summary.has_failures:
            message = summary.failure_text(noun)
            if self.fail_on_partial_failure:
                ti = context.get("ti")
                if ti is not None:
                    ti.xcom_push(key="return_value", value=result)
                raise IterableTaskFailedError(message)
            self.log.warning("%s", message)
        return result
