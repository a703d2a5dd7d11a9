"""Handlers of the read-only project metadata: channels, message types, campaigns, user fields."""

from __future__ import annotations

import copy

from airflow_provider_iterable.testing._answers import Answer, Call
from airflow_provider_iterable.testing._project import Project


def _channels(project: Project, call: Call) -> Answer:
    return Answer(200, {"channels": copy.deepcopy(project.channels)})


def _message_types(project: Project, call: Call) -> Answer:
    return Answer(200, {"messageTypes": copy.deepcopy(project.message_types)})


def _campaigns(project: Project, call: Call) -> Answer:
    return Answer(200, {"campaigns": copy.deepcopy(list(project.campaigns.values()))})


def _get_fields(project: Project, call: Call) -> Answer:
    return Answer(200, {"fields": dict(sorted(project.user_fields.types.items()))})


#: Handlers by endpoint key.
HANDLERS = {
    "GET /api/channels": _channels,
    "GET /api/messageTypes": _message_types,
    "GET /api/campaigns": _campaigns,
    "GET /api/users/getFields": _get_fields,
}
