"""R4: any JSON value of any size at a field the receiver classifies is stored, never a 5xx.

The receiver copies ``eventName``, ``email``, ``userId``, ``campaignId`` and ``workflowId`` into
index columns. Whatever type and size a sender puts there (a 300-character name, ``10**30``, a
list, an object), the delivery is answered 200, its payload is stored intact, and a column that
cannot hold the value is left empty. Checked against a receiver on loopback (uvicorn, the writer
process) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_iterable.event_queue import EventQueue, StoredEvent
from airflow_provider_iterable.webhooks import create_app
from tests.webhooks.conftest import CONN_ID, ThreadedServer, auth_headers

MAX_ID = 2**63 - 1

# Text without NUL (refused with 400 on every backend, by design) in every size that matters:
# short, around the 255-character event name column, and long.
_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
TEXT = st.one_of(
    st.text(_CHARS, max_size=12),
    st.text(_CHARS, min_size=250, max_size=260),
    st.integers(min_value=256, max_value=20_000).map(lambda n: "x" * n),
    st.sampled_from(["é" * 255, "😀" * 255, "😀" * 256, "e" * 255, "e" * 256, "", " 42 ", "00042"]),
    st.from_regex(r"\s?[0-9]{1,25}\s?", fullmatch=True),
)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**300), max_value=10**300),
    st.sampled_from([0, -1, MAX_ID, MAX_ID + 1, -(2**63) - 1, 10**30, -(10**30)]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([42.0, -0.0, 1e308, 2.0**63, 3001.5]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
ANY_JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(_CHARS, max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)
CLASSIFIED = ("eventName", "email", "userId", "campaignId", "workflowId", "messageId")
DATA_FIELDS = st.one_of(
    ANY_JSON,
    st.fixed_dictionaries({}, optional={name: ANY_JSON for name in (*CLASSIFIED, "templateId")}),
)
BODIES = st.fixed_dictionaries(
    {}, optional={**{name: ANY_JSON for name in CLASSIFIED}, "dataFields": DATA_FIELDS}
)
QUERIES = st.fixed_dictionaries(
    {}, optional={"campaignId": st.text(_CHARS, max_size=30), "workflowId": st.text(_CHARS, max_size=30)}
)
# A journey's form body carries only text, a repeated key as a list.
FORM_VALUES = st.one_of(TEXT, st.lists(TEXT, min_size=1, max_size=3))
FORMS = st.fixed_dictionaries({}, optional={name: FORM_VALUES for name in CLASSIFIED})


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def expected_text(value: Any, *, limit: int | None = None, numbers: bool = False) -> str | None:
    """What a text column holds for ``value``: the text if it fits, else nothing."""
    value = _first(value)
    if numbers and type(value) is int:
        value = str(value)
    if isinstance(value, str) and (limit is None or len(value) <= limit):
        return value
    return None


def expected_id(value: Any) -> int | None:
    """What an id column holds for ``value``: a 64-bit non-negative id, else nothing."""
    if type(value) is int:
        return value if 0 <= value <= MAX_ID else None
    if type(value) is float:
        return int(value) if value.is_integer() and 0 <= value <= MAX_ID else None
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value.strip()):
        number = int(value.strip())
        return number if number <= MAX_ID else None
    return None


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@pytest.fixture
def target(conn_env: str, queue_url: str) -> Iterator[tuple[str, EventQueue]]:
    """A receiver on loopback (the default writer process) and the queue it writes to."""
    queue = EventQueue(queue_url)
    try:
        with ThreadedServer(create_app(queue_url=queue_url, purge_interval_seconds=0)) as server:
            yield server.url, queue
    finally:
        queue.close()


def stored_event(queue: EventQueue, answer: httpx.Response) -> StoredEvent:
    assert answer.status_code == 200, (answer.status_code, answer.text)
    event_id = answer.json()["id"]
    (event,) = queue.fetch(after_id=event_id - 1, limit=1)
    assert event.id == event_id
    return event


_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@pytest.mark.slow
@pytest.mark.timeout(600)
@_SETTINGS
@given(body=BODIES, query=QUERIES)
@example(body={"eventName": "e" * 300, "email": "ada@example.com"}, query={})
@example(body={"email": ["a@example.com"], "userId": 10**30, "dataFields": {"campaignId": 10**30}}, query={})
@example(body={"eventName": {"a": 1}, "dataFields": {"workflowId": [1], "campaignId": "9" * 20}}, query={})
def test_system_webhook_with_any_value_at_a_classified_field_is_stored(
    target: tuple[str, EventQueue], body: dict[str, Any], query: dict[str, str]
) -> None:
    url, queue = target
    path = f"/webhooks/{CONN_ID}/system" + (f"?{urlencode(query)}" if query else "")
    answer = httpx.post(url + path, content=json.dumps(body), headers=json_headers(), timeout=60)
    event = stored_event(queue, answer)
    assert canonical(event.payload) == canonical(body)
    data_fields = body.get("dataFields") if isinstance(body.get("dataFields"), dict) else {}
    assert event.event_name == expected_text(body.get("eventName"), limit=255)
    assert event.email == expected_text(body.get("email"))
    user_id = expected_text(body.get("userId"), numbers=True)
    if user_id is None:
        user_id = expected_text(data_fields.get("userId"), numbers=True)
    assert event.user_id == user_id
    campaign = expected_id(_first(data_fields.get("campaignId")))
    assert event.campaign_id == (campaign if campaign is not None else expected_id(query.get("campaignId")))
    assert event.workflow_id == expected_id(data_fields.get("workflowId"))


@pytest.mark.slow
@pytest.mark.timeout(600)
@_SETTINGS
@given(body=BODIES, as_form=st.booleans(), form=FORMS)
@example(body={"eventName": "e" * 300, "workflowId": "not a number"}, as_form=False, form={})
@example(body={}, as_form=True, form={"eventName": ["e" * 300, "x"], "email": "x" * 5000})
def test_journey_webhook_with_any_value_at_a_classified_field_is_stored(
    target: tuple[str, EventQueue], body: dict[str, Any], as_form: bool, form: dict[str, Any]
) -> None:
    url, queue = target
    path = f"{url}/webhooks/{CONN_ID}/journeys/3001"
    if as_form:
        headers = {**auth_headers(), "Content-Type": "application/x-www-form-urlencoded"}
        content = urlencode(form, doseq=True) or "empty="
        # A key sent once is a string; repeated, a list.
        sent: dict[str, Any] = {
            key: value[0] if isinstance(value, list) and len(value) == 1 else value
            for key, value in form.items()
        } or {"empty": ""}
    else:
        headers, content, sent = json_headers(), json.dumps(body), body
    event = stored_event(queue, httpx.post(path, content=content, headers=headers, timeout=60))
    assert canonical(event.payload) == canonical(sent)
    assert event.workflow_id == 3001  # the id in the path wins over any in the body
    assert event.event_name == expected_text(sent.get("eventName"), limit=255)
    assert event.email == expected_text(sent.get("email"))


def json_headers() -> dict[str, str]:
    return {**auth_headers(), "Content-Type": "application/json"}
