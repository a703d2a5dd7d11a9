"""Exceptions that fail an Airflow task at once, without a retry.

Airflow retries a failed task unless it raised :class:`~airflow.sdk.exceptions.AirflowFailException`.
Operators and sensors raise these two for what a retry cannot fix or must not repeat. They are
kept apart from :mod:`airflow_provider_iterable.exceptions` because they derive from an Airflow
class, and importing Airflow costs a second and tens of megabytes that the event queue, the
receiver's writer process and the simulator do not need.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_iterable.exceptions import IterableConfigError, IterableError

__all__ = ["IterableArgumentError", "IterableTaskFailedError", "argument_errors"]


class IterableArgumentError(IterableConfigError, AirflowFailException):
    """Fail the task: an operator or sensor argument is wrong (raised before any request is sent).

    The message names the parameter and what would be right. It is an
    :class:`~airflow_provider_iterable.exceptions.IterableConfigError` (and so a ``ValueError``).
    """


class IterableTaskFailedError(IterableError, AirflowFailException):
    """Fail the task: trying it again cannot fix what happened, or must not repeat it.

    Raised by operators and sensors: Iterable refused a request (a 4xx other than 429), records
    were rejected after the whole input was sent, a call's outcome is unknown, a matched webhook
    payload cannot serve the downstream tasks.
    """


@contextmanager
def argument_errors() -> Iterator[None]:
    """Raise an ``IterableConfigError`` raised inside the block as :class:`IterableArgumentError`.

    The shared value checks (:mod:`airflow_provider_iterable._values`) and the trigger's own
    argument checks serve code outside a task too, so their errors do not fail a task by
    themselves; an operator or sensor checks its arguments inside this block.
    """
    try:
        yield
    except IterableArgumentError:
        raise
    except IterableConfigError as exc:
        raise IterableArgumentError(str(exc)) from None
