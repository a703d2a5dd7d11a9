"""Reading Iterable's bulk answers: which records failed, the merged summary, progress logging.

Iterable's bulk endpoints answer 200 even when records fail, and name the failed ones by
identifier in ``failedUpdates`` (``invalidEmails``, ``notFoundUserIds``, ...), not by position.
:func:`split_accepted` tells the records of one batch apart by those identifiers (what a caller
that records what Iterable accepted needs); :class:`BulkSummary` merges the answers of every
batch into the summary the bulk operators push to XCom.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_provider_iterable._values import is_whole_number

#: Identifiers kept per ``failedUpdates`` list in the XCom summary (the full count is kept too).
DEFAULT_FAILED_IDS_CAP = 1000

_TYPE_MISMATCH_HINT = (
    " (a value whose type differs from the type its field already has in the project: Iterable "
    "fixes a field's type the first time it sees the field and refuses other types afterwards, "
    "RequestFieldsTypesMismatched; GET /api/users/getFields lists the types. For CSV input, "
    "field_types sets the type each column is sent as; cells of columns not listed are strings)"
)
# What a person can do about a failure reason, appended to its count in the failure text.
_REASON_HINTS = {"invalidDataEmails": _TYPE_MISMATCH_HINT, "invalidDataUserIds": _TYPE_MISMATCH_HINT}

# Older answers carry only these deprecated top-level lists instead of ``failedUpdates``.
_LEGACY_FAILED_KEYS = ("invalidEmails", "invalidUserIds")


def failed_updates(answer: Any) -> dict[str, list[Any]]:
    """Return the non-empty ``failedUpdates`` lists of one bulk answer (reason → identifiers).

    :param answer: Iterable's answer to one bulk request.
    """
    if not isinstance(answer, Mapping):
        return {}
    failed = answer.get("failedUpdates")
    if not isinstance(failed, Mapping) or not failed:
        failed = {key: answer[key] for key in _LEGACY_FAILED_KEYS if key in answer}
    return {str(reason): ids for reason, ids in failed.items() if isinstance(ids, list) and ids}


def _count(value: Any) -> int:
    return value if is_whole_number(value) else 0


def split_accepted(
    records: Sequence[Mapping[str, Any]], answer: Any
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Return ``(accepted, not_accepted)``: the records of one batch Iterable took, and the rest.

    A record is not accepted when a ``failedUpdates`` list names its ``email`` (lists whose
    reason ends in ``Emails``, compared case-insensitively, as Iterable does) or its ``userId``
    (``UserIds``), or, for events, when its ``eventName`` is in ``disallowedEventNames``. When
    Iterable counts more failures than it names, or the answer is not a bulk answer, which
    records failed cannot be known, and none counts as accepted.

    :param records: the records the request carried, in order.
    :param answer: Iterable's answer to that request.
    """
    if not isinstance(answer, Mapping):
        return [], list(records)
    emails: set[str] = set()
    user_ids: set[str] = set()
    for reason, ids in failed_updates(answer).items():
        texts = [str(i) for i in ids]
        if reason.endswith("Emails"):
            emails.update(text.lower() for text in texts)
        elif reason.endswith("UserIds"):
            user_ids.update(texts)
        else:  # a reason this code does not know: it may name either
            emails.update(text.lower() for text in texts)
            user_ids.update(texts)
    disallowed = answer.get("disallowedEventNames")
    names = {str(name) for name in disallowed} if isinstance(disallowed, list) else set()
    accepted: list[Mapping[str, Any]] = []
    rejected: list[Mapping[str, Any]] = []
    for record in records:
        email, user_id = record.get("email"), record.get("userId")
        if (
            (isinstance(email, str) and email.lower() in emails)
            or (isinstance(user_id, str) and user_id in user_ids)
            or record.get("eventName") in names
        ):
            rejected.append(record)
        else:
            accepted.append(record)
    if _count(answer.get("failCount")) > len(rejected):
        return [], list(records)
    return accepted, rejected


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
        for reason, ids in failed_updates(answer).items():
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
        """Return a sentence saying how many records failed and why, in counts.

        It names no identifier: it becomes an exception text or a WARNING line, and the
        identifiers (e-mail addresses, userIds) are personal data. They are in the XCom summary's
        ``failedUpdates`` and in the log at DEBUG.

        :param noun: what a record is (``"user"``).
        """
        reasons = [
            f"{reason}: {count:,}{_REASON_HINTS.get(reason, '')}"
            for reason, count in sorted(self.failed_counts.items(), key=lambda kv: -kv[1])
        ]
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
        return text + (
            ". The full summary, with the failed identifiers under failedUpdates, is in this "
            "task's XCom (return_value); the log has them at DEBUG."
        )


class Progress:
    """Log bulk progress every few batches: records sent of the total, and the rate.

    :param log: the task's logger.
    :param noun: what a record is (``"user"``).
    :param total: how many records will be sent, or ``None`` when not known in advance.
    :param every: log every this many batches (and at the end).
    :param clock: monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        log: logging.Logger | Any,
        noun: str,
        total: int | None,
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
        done = self.total is not None and self.sent >= self.total
        if not (final or done or self.batches == 1 or self.batches % self.every == 0):
            return
        rate = self.sent / max(self.clock() - self.started, 1e-9)
        if self.total is None:
            self.log.info(
                "Sent %d %ss in %d batches (%.0f %ss/s)", self.sent, self.noun, self.batches, rate, self.noun
            )
        else:
            self.log.info(
                "Sent %d of %d %ss in %d batches (%.0f %ss/s)",
                self.sent,
                self.total,
                self.noun,
                self.batches,
                rate,
                self.noun,
            )
