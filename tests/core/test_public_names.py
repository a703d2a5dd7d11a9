"""Every public name of the provider's interface imports from the module the guide names."""

from __future__ import annotations

import importlib

import pytest

PUBLIC_NAMES: dict[str, tuple[str, ...]] = {
    "airflow_provider_iterable.hooks.iterable": ("IterableHook",),
    "airflow_provider_iterable.operators": (
        "IterableUpsertUserOperator",
        "IterableBulkUpsertUsersOperator",
        "IterableGetUserByEmailOperator",
        "IterableGetUserByIdOperator",
        "IterableUpdateUserSubscriptionsOperator",
        "IterableDeleteUserOperator",
        "IterableCreateListOperator",
        "IterableListProjectListsOperator",
        "IterableAddSubscribersToListOperator",
        "IterableRemoveSubscribersFromListOperator",
        "IterableTrackEventOperator",
        "IterableTrackBulkEventsOperator",
        "IterableSendSmsOperator",
        "IterableSendEmailOperator",
        "IterableListChannelsOperator",
        "IterableTriggerJourneyOperator",
    ),
    "airflow_provider_iterable.sensors": (
        "IterableWebhookSensor",
        "IterableSystemWebhookSensor",
        "IterableWorkflowWebhookSensor",
    ),
    "airflow_provider_iterable.triggers": ("IterableWebhookTrigger",),
    "airflow_provider_iterable.webhooks": ("create_app",),
    "airflow_provider_iterable.testing": ("IterableSimulator", "run_dag"),
    "airflow_provider_iterable.state": ("RunLog", "RunRecord", "StateDatabase"),
}


@pytest.mark.parametrize(
    ("module", "name"), [(module, name) for module, names in PUBLIC_NAMES.items() for name in names]
)
def test_public_name_imports(module: str, name: str) -> None:
    imported = importlib.import_module(module)
    assert hasattr(imported, name), f"{module} has no {name}"
    assert name in getattr(imported, "__all__", ()), f"{name} is not in {module}.__all__"


def test_the_hook_keeps_its_identity() -> None:
    from airflow_provider_iterable.hooks.iterable import IterableHook

    assert (IterableHook.conn_type, IterableHook.default_conn_name, IterableHook.conn_name_attr) == (
        "iterable",
        "iterable_default",
        "iterable_conn_id",
    )
