"""Iterable's documented per-endpoint rate limits: the one table the hook paces by and the simulator enforces.

Kept out of :mod:`airflow_provider_iterable.hooks` (whose package imports Airflow) so that the
simulator can share it without importing Airflow. Limits are per Iterable project; see
``docs/rate-limits.md`` for overriding them per connection.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DEFAULT_RATE_LIMITS", "UNDOCUMENTED_RATE_LIMIT"]

#: Iterable's documented limits in requests per second, keyed by ``"METHOD /api/path-template"``.
#: A per-minute limit is a fraction (5/min is 5 / 60).
DEFAULT_RATE_LIMITS: Mapping[str, float] = {
    "POST /api/events/track": 2000.0,
    "POST /api/users/update": 500.0,
    "GET /api/users/getByEmail": 100.0,
    "GET /api/users/{email}": 100.0,
    "GET /api/users/byUserId": 100.0,
    "GET /api/users/byUserId/{userId}": 100.0,
    "DELETE /api/users/{email}": 100.0,
    "DELETE /api/users/byUserId/{userId}": 100.0,
    "GET /api/lists": 100.0,
    "GET /api/channels": 100.0,
    "GET /api/messageTypes": 100.0,
    "GET /api/campaigns": 100.0,
    "POST /api/events/trackBulk": 10.0,
    "POST /api/users/bulkUpdate": 5.0,
    "GET /api/users/getFields": 3.0,
    "POST /api/users/forget": 3.0,
    "GET /api/lists/getUsers": 5.0 / 60.0,
    "GET /api/lists/{listId}/size": 5.0 / 60.0,
    "GET /api/export/data.json": 4.0 / 60.0,
}

#: Endpoints Iterable documents no limit for (``lists/subscribe``, ``sms/target``, ...) are paced
#: conservatively at this many requests per second.
UNDOCUMENTED_RATE_LIMIT = 10.0
