"""The simulator's handlers, one module per area of Iterable's API, and the table that routes to them.

Each area module holds plain functions ``handler(project, call) -> Answer`` and a ``HANDLERS``
table keyed ``"METHOD /api/path-template"`` (Iterable's own path templates: ``{email}`` matches
one path segment). Adding an endpoint is: write its handler in the module of its area (or a new
module, listed in :data:`AREAS`), add it to that module's ``HANDLERS``, and, when it takes a JSON
body, name the body's definition in :data:`~airflow_provider_iterable.testing._spec.BODY_DEFINITIONS`
(it is then validated against Iterable's spec before the handler runs). The HTTP server routes
every key of :data:`HANDLERS` and the rate limiter reads its limit from the hook's table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType

from airflow_provider_iterable.testing._answers import Answer, ApiError, Call
from airflow_provider_iterable.testing._handlers import events, lists, messaging, metadata, users
from airflow_provider_iterable.testing._project import Project
from airflow_provider_iterable.testing._validation import validate_body

Handler = Callable[[Project, Call], Answer]

#: The area modules whose ``HANDLERS`` (and optional ``BODY_LIMITS``) are served.
AREAS: tuple[ModuleType, ...] = (users, lists, events, messaging, metadata)


def _merge(tables: list[Mapping[str, object]]) -> dict[str, object]:
    merged: dict[str, object] = {}
    for table in tables:
        twice = merged.keys() & table.keys()
        if twice:
            raise RuntimeError(f"endpoints served by two handlers: {sorted(twice)}")
        merged.update(table)
    return merged


#: Handlers by endpoint key; the HTTP layer routes to these.
HANDLERS: dict[str, Handler] = _merge([area.HANDLERS for area in AREAS])  # type: ignore[assignment]

#: Largest body in bytes by endpoint key (refused with 413 before it is parsed), where Iterable has one.
BODY_LIMITS: dict[str, int] = _merge([getattr(area, "BODY_LIMITS", {}) for area in AREAS])  # type: ignore[assignment]


def dispatch(project: Project, endpoint: str, call: Call) -> Answer:
    """Validate ``call``'s body against the spec and run the endpoint's handler under the project's lock.

    :param project: the simulated project.
    :param endpoint: a key of :data:`HANDLERS`.
    :param call: the parsed request.
    :raises ApiError: when the body does not match the spec (the caller answers it).
    """
    handler = HANDLERS[endpoint]
    validate_body(endpoint, call.body)
    with project.lock:
        try:
            return handler(project, call)
        except ApiError as exc:
            return exc.answer()
