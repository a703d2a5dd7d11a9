"""One exception hierarchy: every exception class of the provider derives from IterableError."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import subprocess
import sys

import pytest
from airflow.sdk.exceptions import AirflowFailException

import airflow_provider_iterable
from airflow_provider_iterable import exceptions, failures

# The simulator's own HTTP control flow: raised and caught inside one request handler, never
# seen by a caller of the provider.
_INTERNAL_TO_THE_SIMULATOR = "airflow_provider_iterable.testing"


def _provider_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(airflow_provider_iterable.__path__, "airflow_provider_iterable."):
        if info.name.endswith("__main__") or info.name.startswith(_INTERNAL_TO_THE_SIMULATOR):
            continue
        names.append(info.name)
    return names


@pytest.mark.parametrize("module_name", _provider_modules())
def test_every_exception_class_derives_from_iterable_error(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if obj.__module__ != module_name or not issubclass(obj, BaseException):
            continue
        assert issubclass(obj, exceptions.IterableError), f"{module_name}.{obj.__name__}"


@pytest.mark.parametrize("cls", [failures.IterableArgumentError, failures.IterableTaskFailedError])
def test_errors_a_task_retry_cannot_fix_fail_the_task(cls: type[Exception]) -> None:
    assert issubclass(cls, AirflowFailException) and issubclass(cls, exceptions.IterableError)


def test_argument_errors_are_config_errors() -> None:
    assert issubclass(failures.IterableArgumentError, exceptions.IterableConfigError)
    with pytest.raises(failures.IterableArgumentError, match="limit must be"), failures.argument_errors():
        raise exceptions.IterableConfigError("limit must be a whole number")


def test_the_queue_the_writer_and_the_simulator_import_no_airflow() -> None:
    # Importing Airflow costs a second and tens of megabytes: the receiver's writer process, the
    # queue's readers and the simulator (run in users' test processes and benchmarks) do without.
    code = (
        "import sys; import airflow_provider_iterable.exceptions, airflow_provider_iterable.event_queue, "
        "airflow_provider_iterable.testing, airflow_provider_iterable.webhooks.writer_process_main; "
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_config_errors_are_value_errors() -> None:
    assert issubclass(exceptions.IterableConfigError, ValueError)


def test_webhook_rejection_pickles() -> None:
    error = pickle.loads(pickle.dumps(exceptions.WebhookRejectedError(413, "body larger than 10 bytes")))
    assert (error.status, error.detail, str(error)) == (
        413,
        "body larger than 10 bytes",
        "body larger than 10 bytes",
    )
