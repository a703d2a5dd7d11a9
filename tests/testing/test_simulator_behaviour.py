"""Rate limits, scripted faults, recording and the HTTP server's robustness."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable

import pytest
import requests

from airflow_provider_iterable.testing import DEFAULT_API_KEY, IterableSimulator, RecordedRequest
from tests.testing._client import ApiClient


# ------------------------------------------------------------------------------ rate limits
def test_burst_beyond_the_bucket_gets_429(api: ApiClient, sim: IterableSimulator) -> None:
    # users/bulkUpdate: 5/s, so a burst of max(2, 5) = 5 passes and the sixth is refused.
    statuses = [api.post("/api/users/bulkUpdate", json={"users": []}).status_code for _ in range(8)]
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]
    refused = next(r for r in sim.requests_for("POST /api/users/bulkUpdate") if r.status == 429)
    assert refused.status == 429
    answer = api.post("/api/users/bulkUpdate", json={"users": []})
    assert answer.status_code == 429
    assert answer.json() == {
        "msg": "Exceeded rate limit for endpoint: /api/users/bulkUpdate",
        "code": "RateLimitExceeded",
        "params": None,
    }
    assert sim.rate_limited_count("POST /api/users/bulkUpdate") == statuses.count(429) + 1
    assert sim.rate_limited_count() == sim.rate_limited_count("POST /api/users/bulkUpdate")
    assert sim.rate_limited_count("POST /api/users/update") == 0


def test_bucket_refills_at_the_rate(api: ApiClient, sim: IterableSimulator) -> None:
    sim.set_rate_limit("POST /api/lists", 20)
    while api.post("/api/lists", json={"name": "drain"}).status_code == 200:
        pass
    time.sleep(0.12)  # 2.4 tokens at 20/s
    assert api.post("/api/lists", json={"name": "refilled"}).status_code == 200


def test_client_paced_at_the_limit_never_sees_429(api: ApiClient, sim: IterableSimulator) -> None:
    sim.set_rate_limit("POST /api/lists/subscribe", 50)
    list_id = sim.add_list("paced")
    start = time.monotonic()
    statuses = []
    for i in range(60):
        # Even pacing at exactly 50/s, as the provider's client-side limiter does.
        delay = start + i / 50 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        statuses.append(
            api.post("/api/lists/subscribe", json={"listId": list_id, "subscribers": []}).status_code
        )
    assert statuses == [200] * 60


def test_undocumented_endpoint_defaults_to_10_per_second(sim: IterableSimulator) -> None:
    assert sim.rate_limit("POST /api/sms/target") == 10
    assert sim.rate_limit("POST /api/users/bulkUpdate") == 5
    assert sim.rate_limit("POST /api/events/track") == 2000
    assert sim.rate_limit("GET /api/lists/getUsers") == pytest.approx(5 / 60)


def test_scale_and_overrides() -> None:
    sim = IterableSimulator(rate_limits={"POST /api/users/bulkUpdate": 2}, rate_limit_scale=1000)
    assert sim.rate_limit("POST /api/users/bulkUpdate") == 2000
    assert sim.rate_limit("POST /api/users/update") == 500_000
    sim.set_rate_limit("POST /api/users/update", 3)
    assert sim.rate_limit("POST /api/users/update") == 3
    sim.set_rate_limit("POST /api/users/update", None)
    assert sim.rate_limit("POST /api/users/update") is None


def test_bad_rate_limit_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_limit_scale"):
        IterableSimulator(rate_limit_scale=0)
    with pytest.raises(ValueError, match="POST /api/users/update"):
        IterableSimulator(rate_limits={"POST /api/users/update": -1})


def test_enforce_rate_limits_false_never_429s() -> None:
    with IterableSimulator(enforce_rate_limits=False) as sim, ApiClient(sim) as client:
        statuses = {client.post("/api/users/bulkUpdate", json={"users": []}).status_code for _ in range(30)}
        assert statuses == {200}
        assert sim.rate_limited_count() == 0
        sim.enforce_rate_limits = True
        statuses = {client.post("/api/users/bulkUpdate", json={"users": []}).status_code for _ in range(30)}
        assert 429 in statuses


def test_wrong_key_is_not_rate_limited_against_the_project(sim: IterableSimulator) -> None:
    with ApiClient(sim, api_key="wrong") as client:
        statuses = {client.post("/api/users/bulkUpdate", json={"users": []}).status_code for _ in range(10)}
    assert statuses == {401}
    assert sim.rate_limited_count() == 0


# ---------------------------------------------------------------------------------- faults
def test_fault_status_body_headers_then_normal(api: ApiClient, sim: IterableSimulator) -> None:
    sim.add_fault("POST /api/users/update", status=503, headers={"Retry-After": "2"}, times=2)
    first = api.post("/api/users/update", json={"email": "f@example.com"})
    second = api.post("/api/users/update", json={"email": "f@example.com"})
    third = api.post("/api/users/update", json={"email": "f@example.com"})
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.headers["Retry-After"] == "2"
    assert first.json()["code"] == "GenericError"
    assert [r.status for r in sim.requests_for("POST /api/users/update")] == [503, 503, 200]
    # The faulted calls were not applied; only the last one created the user.
    assert sim.get_user(email="f@example.com") is not None


def test_fault_with_custom_body(api: ApiClient, sim: IterableSimulator) -> None:
    sim.add_fault("GET /api/channels", status=429, body="Too many requests")
    answer = api.get("/api/channels")
    assert answer.status_code == 429
    assert answer.text == "Too many requests"
    sim.add_fault("GET /api/channels", status=500, body={"code": "DatabaseError", "msg": "db"})
    assert api.get("/api/channels").json()["code"] == "DatabaseError"
    # Scripted 429s are not counted as rate limiting.
    assert sim.rate_limited_count() == 0


def test_fault_applies_before_auth(sim: IterableSimulator) -> None:
    sim.add_fault("GET /api/lists", status=500)
    assert requests.get(sim.url + "/api/lists", timeout=5).status_code == 500


def test_fault_delay_is_a_read_timeout_after_the_request_arrived(
    api: ApiClient, sim: IterableSimulator
) -> None:
    sim.add_fault("POST /api/sms/target", delay=1.0, status=200, body={"msg": "", "code": "Success"})
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.session.post(
            sim.url + "/api/sms/target",
            json={"campaignId": 2001, "recipientEmail": "d@example.com"},
            timeout=(2, 0.3),
        )
    recorded = sim.requests_for("POST /api/sms/target")
    assert len(recorded) == 1
    assert recorded[0].json == {"campaignId": 2001, "recipientEmail": "d@example.com"}


def test_fault_delay_without_status_processes_normally(api: ApiClient, sim: IterableSimulator) -> None:
    sim.add_fault("POST /api/users/update", delay=0.3, headers={"X-Slow": "yes"})
    started = time.monotonic()
    answer = api.post("/api/users/update", json={"email": "slow@example.com"})
    assert time.monotonic() - started >= 0.3
    assert answer.status_code == 200
    assert answer.headers["X-Slow"] == "yes"
    assert sim.get_user(email="slow@example.com") is not None


def test_fault_drop_closes_the_connection_without_answer(api: ApiClient, sim: IterableSimulator) -> None:
    sim.add_fault("POST /api/workflows/triggerWorkflow", drop=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.post("/api/workflows/triggerWorkflow", json={"workflowId": 3001, "email": "w@example.com"})
    recorded = sim.requests_for("POST /api/workflows/triggerWorkflow")
    assert [r.status for r in recorded] == [0]
    assert recorded[0].json["workflowId"] == 3001
    assert sim.workflow_triggers == []
    # The same session recovers on a new connection.
    answer = api.post("/api/workflows/triggerWorkflow", json={"workflowId": 3001, "email": "w@example.com"})
    assert answer.status_code == 200


def test_faults_queue_in_order(api: ApiClient, sim: IterableSimulator) -> None:
    sim.add_fault("GET /api/lists", status=500)
    sim.add_fault("GET /api/lists", status=502, times=2)
    statuses = [api.get("/api/lists").status_code for _ in range(4)]
    assert statuses == [500, 502, 502, 200]


def test_clear_faults(api: ApiClient, sim: IterableSimulator) -> None:
    sim.add_fault("GET /api/lists", status=500, times=5)
    sim.clear_faults()
    assert api.get("/api/lists").status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": 99}, "status"),
        ({"body": "x"}, "body needs a status"),
        ({"delay": -1}, "delay"),
        ({"times": 0}, "times"),
    ],
)
def test_bad_fault_arguments(sim: IterableSimulator, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sim.add_fault("GET /api/lists", **kwargs)


def test_fault_endpoint_must_name_a_method(sim: IterableSimulator) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        sim.add_fault("/api/lists", status=500)


# ------------------------------------------------------------------------------- recording
def test_recorded_request_fields(api: ApiClient, sim: IterableSimulator) -> None:
    before = time.monotonic()
    api.post("/api/users/update?trace=1&trace=2", json={"email": "rec@example.com"})
    api.get("/api/users/rec%40example.com")
    api.get("/api/missing")
    first, second, third = sim.requests
    assert isinstance(first, RecordedRequest)
    assert first.method == "POST"
    assert first.path == "/api/users/update"
    assert first.query == {"trace": ["1", "2"]}
    assert first.headers["api-key"] == DEFAULT_API_KEY
    assert first.headers["content-type"] == "application/json"
    assert json.loads(first.body) == {"email": "rec@example.com"}
    assert first.json == {"email": "rec@example.com"}
    assert first.endpoint == "POST /api/users/update"
    assert first.status == 200
    assert before <= first.received_at <= second.received_at
    assert second.endpoint == "GET /api/users/{email}"
    assert second.path == "/api/users/rec%40example.com"
    assert second.json is None
    assert third.endpoint == "GET /api/missing"
    assert third.status == 404
    assert sim.requests_for("GET /api/users/{email}") == [second]
    sim.clear_requests()
    assert sim.requests == []


def test_recorded_json_is_not_shared_with_state(api: ApiClient, sim: IterableSimulator) -> None:
    api.post("/api/users/update", json={"email": "iso@example.com", "dataFields": {"tags": ["a"]}})
    sim.requests[0].json["dataFields"]["tags"].append("mutated")
    assert sim.get_user(email="iso@example.com")["dataFields"]["tags"] == ["a"]


def test_max_recorded_requests_keeps_the_latest() -> None:
    with IterableSimulator(max_recorded_requests=3) as sim, ApiClient(sim) as client:
        for i in range(5):
            client.get("/api/channels", params={"i": i})
        assert [r.query["i"] for r in sim.requests] == [["2"], ["3"], ["4"]]


# --------------------------------------------------------------------------- HTTP robustness
def test_keep_alive_reuses_one_connection_and_is_fast(sim: IterableSimulator) -> None:
    sim.enforce_rate_limits = False
    with ApiClient(sim) as client:
        started = time.perf_counter()
        for _ in range(1000):
            assert client.get("/api/channels").status_code == 200
        elapsed = time.perf_counter() - started
    # The server kept the connection open: the client never had to open a second one.
    assert sim.connections_accepted == 1
    # 1,000 small calls on one keep-alive session take about a second even on a loaded machine; a
    # Nagle / delayed-ACK stall (40 ms a call) would take 40 s.
    assert elapsed < 15.0, f"1,000 calls took {elapsed:.2f} s"


def test_one_connection_serves_all_calls(sim: IterableSimulator) -> None:
    sim.enforce_rate_limits = False
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as conn:
        stream = conn.makefile("rb")
        for i in range(3):
            body = json.dumps({"email": f"k{i}@example.com"}).encode()
            conn.sendall(
                b"POST /api/users/update HTTP/1.1\r\nHost: x\r\nApi-Key: "
                + DEFAULT_API_KEY.encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            status_line = stream.readline()
            assert status_line.startswith(b"HTTP/1.1 200"), status_line
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            assert json.loads(stream.read(length))["code"] == "Success"
    assert sim.get_user(email="k2@example.com") is not None


def test_chunked_request_body(api: ApiClient, sim: IterableSimulator) -> None:
    def chunks():
        yield b'{"email": "chunk'
        yield b'@example.com"}'

    answer = api.post("/api/users/update", data=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 200
    assert sim.get_user(email="chunk@example.com") is not None


@pytest.mark.parametrize(
    ("raw", "answer_starts"),
    [
        (b"GARBAGE\r\n\r\n", b"<!DOCTYPE HTML"),
        (b"\x00\xff\xfe\r\n\r\n", b"<!DOCTYPE HTML"),
        (b"POST /api/users/update HTTP/1.1\r\nContent-Length: nope\r\n\r\n", b"HTTP/1.1 400"),
        (b"POST /api/users/update HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", b"HTTP/1.1 413"),
        (b"POST /api/users/update HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"HTTP/1.1 400"),
        (b"POST /api/users/update HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", b"HTTP/1.1 400"),
        (b"GET /api/%ff%00/../\xff HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 404"),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", b"HTTP/1.1 431"),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"HTTP/1.1 414"),
        (b"GET http://[bad/api HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 400"),
    ],
)
def test_garbage_gets_an_error_and_never_breaks_the_server(
    sim: IterableSimulator, raw: bytes, answer_starts: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as conn:
        conn.sendall(raw)
        conn.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert received.startswith(answer_starts), received[:80]
    with ApiClient(sim) as client:
        assert client.get("/api/channels").status_code == 200


def test_concurrent_clients(sim: IterableSimulator) -> None:
    sim.enforce_rate_limits = False
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with ApiClient(sim) as client:
                for i in range(50):
                    answer = client.post(
                        "/api/users/bulkUpdate",
                        json={"users": [{"email": f"w{n}-{i}@example.com", "dataFields": {"n": i}}]},
                    )
                    assert answer.json()["successCount"] == 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(sim.requests_for("POST /api/users/bulkUpdate")) == 400
    assert sim.get_user(email="w7-49@example.com")["dataFields"]["n"] == 49


def test_stop_is_prompt_with_open_connections_and_frees_the_port() -> None:
    sim = IterableSimulator().start()
    client = ApiClient(sim)
    assert client.get("/api/channels").status_code == 200  # leaves a keep-alive connection open
    sim.add_fault("GET /api/lists", delay=30, status=200)
    slow = threading.Thread(target=lambda: _swallow(lambda: client.get("/api/lists")), daemon=True)
    slow.start()
    time.sleep(0.2)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 10  # not the 30 s the slow request waits
    slow.join(timeout=5)
    assert not slow.is_alive()
    client.session.close()
    # The port is free again: a new simulator can listen on it.
    with IterableSimulator(port=sim.port) as again, ApiClient(again) as fresh:
        assert fresh.get("/api/channels").status_code == 200
    sim.stop()  # idempotent


def _swallow(call: Callable[[], object]) -> None:
    with contextlib.suppress(requests.RequestException):
        call()


def test_connection_json_points_at_the_simulator(sim: IterableSimulator) -> None:
    conn = json.loads(sim.connection_json(timeout=5))
    assert conn == {
        "conn_type": "iterable",
        "host": sim.url,
        "password": DEFAULT_API_KEY,
        "extra": {"timeout": 5},
    }
    assert sim.url.startswith("http://127.0.0.1:")


def test_connection_json_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        IterableSimulator().connection_json()


def test_start_twice_is_an_error(sim: IterableSimulator) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        sim.start()
