"""Airflow operators for every Iterable action the provider supports.

.. code-block:: python

    from airflow_provider_iterable.operators import IterableBulkUpsertUsersOperator

    IterableBulkUpsertUsersOperator(task_id="load_users", users_file="s3://crm/users.jsonl")
"""

from __future__ import annotations

from airflow_provider_iterable.operators.events import (
    IterableTrackBulkEventsOperator,
    IterableTrackEventOperator,
)
from airflow_provider_iterable.operators.lists import (
    IterableAddSubscribersToListOperator,
    IterableCreateListOperator,
    IterableListProjectListsOperator,
    IterableRemoveSubscribersFromListOperator,
)
from airflow_provider_iterable.operators.messaging import (
    IterableListChannelsOperator,
    IterableSendEmailOperator,
    IterableSendSmsOperator,
    IterableTriggerJourneyOperator,
)
from airflow_provider_iterable.operators.users import (
    IterableBulkUpsertUsersOperator,
    IterableDeleteUserOperator,
    IterableGetUserByEmailOperator,
    IterableGetUserByIdOperator,
    IterableUpdateUserSubscriptionsOperator,
    IterableUpsertUserOperator,
)

__all__ = [
    "IterableAddSubscribersToListOperator",
    "IterableBulkUpsertUsersOperator",
    "IterableCreateListOperator",
    "IterableDeleteUserOperator",
    "IterableGetUserByEmailOperator",
    "IterableGetUserByIdOperator",
    "IterableListChannelsOperator",
    "IterableListProjectListsOperator",
    "IterableRemoveSubscribersFromListOperator",
    "IterableSendEmailOperator",
    "IterableSendSmsOperator",
    "IterableTrackBulkEventsOperator",
    "IterableTrackEventOperator",
    "IterableTriggerJourneyOperator",
    "IterableUpdateUserSubscriptionsOperator",
    "IterableUpsertUserOperator",
]
