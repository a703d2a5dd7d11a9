"""R6: random methods, paths, headers, content types and bodies never reach a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.webhooks.conftest import CONN_ID, SECRET, ReceiverProcess, count_rows

METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "FOO"])
PATHS = st.one_of(
    st.sampled_from(
        [
            f"/webhooks/{CONN_ID}/system",
            f"/webhooks/{CONN_ID}/journeys",
            f"/webhooks/{CONN_ID}/journeys/3001",
            "/webhooks/unknown/system",
            "/health",
            "/",
        ]
    ),
    st.builds(
        lambda conn, tail: f"/webhooks/{conn}/{tail}",
        st.sampled_from([CONN_ID, "x", "%00", "..", "a" * 300, "%C3%A9"]),
        st.sampled_from(["system", "journeys", "journeys/abc", "journeys/-5", "journeys/1/2", "system/"]),
    ),
)
QUERIES = st.one_of(
    st.just(""),
    st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=40).map(lambda q: "?" + q),
    st.sampled_from(["?workflowId=3001", "?workflowId=x", "?campaignId=1&campaignId=2", "?a=%ff", "?a=%00"]),
)
CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=latin-1",
            "application/x-www-form-urlencoded",
            "application/vnd.api+json",
            "text/plain",
            "multipart/form-data; boundary=zz",
            ";;;",
            "application/json; charset",
        ]
    ),
    # The client refuses header values with surrounding spaces, so none are generated.
    st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=30).map(str.strip),
)
AUTH = st.one_of(
    st.none(),
    st.sampled_from(
        [f"Bearer {SECRET}", SECRET, f"Basic {SECRET}", "Bearer wrong", f"Bearer {SECRET} extra"]
    ),
    st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=40).map(str.strip),
)
ENCODINGS = st.one_of(st.none(), st.sampled_from(["gzip", "identity", "br", "", "identity, gzip"]))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
BODIES = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=5).map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"", b"{", b"[" * 5000, b'{"a":"\\u0000"}', b'{"a":"\\udfff"}', b"a=1&a=2", b"%ff=1"]),
)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'queue.db'}"
    with ReceiverProcess(url, extra_args=["--max-body-bytes", "4096"]) as proc:
        yield proc


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_random_requests_never_get_a_5xx(fuzz_target: ReceiverProcess, tmp_path: Path) -> None:
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=fuzz_target.url, timeout=30) as client:

        @settings(
            max_examples=3000,
            deadline=None,
            derandomize=False,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            database=None,
        )
        @given(
            method=METHODS,
            path=PATHS,
            query=QUERIES,
            content_type=CONTENT_TYPES,
            auth=AUTH,
            body=BODIES,
            encoding=ENCODINGS,
        )
        # Valid deliveries are rare among random inputs (a run can draw none): these two always
        # run, so the final check that the store was reached does not depend on the draw.
        @example(
            method="POST",
            path=f"/webhooks/{CONN_ID}/system",
            query="",
            content_type="application/json",
            auth=f"Bearer {SECRET}",
            body=b'{"email": "ada@example.com", "eventName": "emailSend", "dataFields": {}}',
            encoding=None,
        )
        @example(
            method="GET",
            path=f"/webhooks/{CONN_ID}/journeys/3001",
            query="?email=ada%40example.com",
            content_type=None,
            auth=f"Bearer {SECRET}",
            body=b"",
            encoding=None,
        )
        def check(
            method: str,
            path: str,
            query: str,
            content_type: str | None,
            auth: str | None,
            body: bytes,
            encoding: str | None,
        ) -> None:
            headers: dict[str, Any] = {}
            if encoding is not None:
                headers["Content-Encoding"] = encoding
            if content_type is not None:
                headers["Content-Type"] = content_type
            if auth is not None:
                headers["Authorization"] = auth
            answer = client.request(method, path + query, headers=headers, content=body or None)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            assert 200 <= answer.status_code < 500, (method, path + query, headers, body[:200], answer.text)
            assert "Traceback" not in answer.text

        check()

    assert fuzz_target.proc is not None and fuzz_target.proc.poll() is None
    assert httpx.get(fuzz_target.url + "/health", timeout=30).status_code == 200
    # The fuzzing reached the parser and the store, not only the gates.
    assert statuses.get(200, 0) > 10 and statuses.get(400, 0) > 10 and statuses.get(401, 0) > 10
    assert count_rows(fuzz_target.queue_url) > 0
