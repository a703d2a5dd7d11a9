"""Bulk upsert through Airflow: streamed files, batching by count and bytes, partial failures."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_iterable.failures import IterableTaskFailedError
from airflow_provider_iterable.operators import IterableBulkUpsertUsersOperator
from tests.operators.conftest import START, states, xcom

BULK = "POST /api/users/bulkUpdate"


def _write_jsonl(path: Path, users: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for user in users:
            handle.write(json.dumps(user) + "\n")
    return path


def test_25k_users_from_json_lines_with_planted_invalid_emails(
    dag_runner: Any, simulator: Any, tmp_path: Path
) -> None:
    invalid_at = {10, 12_345, 24_999}
    users = [
        {
            "email": f"not-an-email-{i}" if i in invalid_at else f"user{i}@example.com",
            "dataFields": {"n": i, "plan": "pro" if i % 2 else "free"},
        }
        for i in range(25_000)
    ]
    path = _write_jsonl(tmp_path / "users.jsonl", users)
    with DAG("iterable_bulk_25k", schedule=None, start_date=START, default_args={"retries": 2}) as dag:
        IterableBulkUpsertUsersOperator(task_id="load", users_file=str(path), create_new_fields=True)

    run = dag_runner(dag)

    # Record-level failures fail the task for good (a retry would resend 25,000 users) ...
    assert states(run) == {"load": "failed"}
    # ... but only after every batch was sent.
    calls = simulator.requests_for(BULK)
    assert len(calls) == 25
    assert all(len(call.json["users"]) == 1000 for call in calls)
    assert all(call.json["createNewFields"] is True for call in calls)
    # Up to four requests are in flight at once, so batches may arrive in any order; each batch
    # is a slice of 1,000 consecutive lines.
    sent = [user for call in calls for user in call.json["users"]]
    assert sorted(sent, key=lambda user: user["dataFields"]["n"]) == users
    assert sorted(call.json["users"][0]["dataFields"]["n"] for call in calls) == list(range(0, 25_000, 1000))
    assert simulator.rate_limited_count(BULK) == 0
    for i in (0, 9_999, 12_344, 24_998):
        assert simulator.get_user(email=f"user{i}@example.com")["dataFields"]["n"] == i

    summary = xcom(run, "load")
    assert summary["batches"] == 25
    assert summary["successCount"] == 25_000 - 3
    assert summary["failCount"] == 3
    assert summary["failedUpdates"]["invalidEmails"] == [f"not-an-email-{i}" for i in sorted(invalid_at)]
    assert summary["failedUpdateCounts"] == {"invalidEmails": 3}


def test_csv_with_field_types_gzip_and_xcom_list_input(
    dag_runner: Any, simulator: Any, tmp_path: Path
) -> None:
    csv_path = tmp_path / "users.csv.gz"
    rows = (
        "\ufeffemail,userId,age,score,vip,signup,zip,note\n"
        'ada@example.com,,36,9.5,yes,2026-03-01,02139,"likes, commas"\n'
        ",u-2,41,,false,2026-03-02T10:20:30+02:00,,\n"
        "\n"
    )
    csv_path.write_bytes(gzip.compress(rows.encode("utf-8")))

    with DAG("iterable_bulk_csv_and_xcom", schedule=None, start_date=START) as dag:
        from_csv = IterableBulkUpsertUsersOperator(
            task_id="from_csv",
            users_file=str(csv_path),
            field_types={"age": "int", "score": "float", "vip": "bool", "signup": "date"},
        )

        @task
        def extract() -> list[dict[str, Any]]:
            return [{"email": "x1@example.com", "dataFields": {"k": 1}}, {"userId": "u-x2"}]

        from_xcom = IterableBulkUpsertUsersOperator(task_id="from_xcom", users=extract())
        from_csv >> from_xcom

    run = dag_runner(dag)

    assert set(states(run).values()) == {"success"}
    first, second = simulator.requests_for(BULK)
    assert first.json == {
        "users": [
            {
                "email": "ada@example.com",
                "dataFields": {
                    "age": 36,
                    "score": 9.5,
                    "vip": True,
                    "signup": "2026-03-01 00:00:00 +00:00",
                    # Not in field_types: sent as the string it is (a zip code is not a number).
                    "zip": "02139",
                    "note": "likes, commas",
                },
            },
            {
                "userId": "u-2",
                "dataFields": {"age": 41, "vip": False, "signup": "2026-03-02 08:20:30 +00:00"},
            },
        ]
    }
    assert second.json == {"users": [{"email": "x1@example.com", "dataFields": {"k": 1}}, {"userId": "u-x2"}]}
    assert xcom(run, "from_csv") == {
        "batches": 1,
        "successCount": 2,
        "failCount": 0,
        "failedUpdates": {},
        "failedUpdateCounts": {},
        "createdFields": ["age", "note", "score", "signup", "vip", "zip"],
        "filteredOutFields": [],
    }
    assert xcom(run, "from_xcom")["successCount"] == 2


def test_batches_stay_under_the_byte_limit(simulator: Any, tmp_path: Path) -> None:
    users = [{"email": f"big{i}@example.com", "dataFields": {"bio": "x" * 3_000}} for i in range(100)]
    path = _write_jsonl(tmp_path / "big.ndjson", users)
    op = IterableBulkUpsertUsersOperator(task_id="load", users_file=str(path), max_batch_bytes=20_000)

    summary = op.execute({})  # type: ignore[arg-type]

    calls = simulator.requests_for(BULK)
    assert all(len(call.body) < 20_000 for call in calls)
    # Each user is ~3.05 kB of JSON: 6 fit in 20,000 bytes less the envelope reserve, 7 would not.
    assert sorted(len(call.json["users"]) for call in calls) == [4] + [6] * 16
    assert sorted((u for call in calls for u in call.json["users"]), key=lambda u: u["email"]) == sorted(
        users, key=lambda u: u["email"]
    )
    assert summary["batches"] == 17
    assert summary["successCount"] == 100


def test_partial_failure_can_be_tolerated(simulator: Any) -> None:
    op = IterableBulkUpsertUsersOperator(
        task_id="load",
        users=[{"email": "ok@example.com"}, {"email": "broken"}],
        fail_on_partial_failure=False,
    )
    summary = op.execute({})  # type: ignore[arg-type]
    assert summary["successCount"] == 1
    assert summary["failedUpdates"] == {"invalidEmails": ["broken"]}


def test_bad_input_fails_before_any_request(
    dag_runner: Any, simulator: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    malformed = tmp_path / "malformed.jsonl"
    malformed.write_text(
        '{"email": "a@example.com"}\n\n{"email": "b@example.com"\n{"email": "c@example.com"}\n'
    )
    no_identity = _write_jsonl(tmp_path / "noid.jsonl", [{"email": "a@example.com"}, {"dataFields": {}}])
    bad_cell = tmp_path / "bad.csv"
    bad_cell.write_text("email,age\na@example.com,36\nb@example.com,thirty\n")
    with DAG("iterable_bulk_bad_input", schedule=None, start_date=START, default_args={"retries": 2}) as dag:
        IterableBulkUpsertUsersOperator(task_id="malformed", users_file=str(malformed))
        IterableBulkUpsertUsersOperator(task_id="no_identity", users_file=str(no_identity))
        IterableBulkUpsertUsersOperator(task_id="missing_file", users_file=str(tmp_path / "absent.jsonl"))
        IterableBulkUpsertUsersOperator(task_id="no_extension", users_file=str(tmp_path / "users.txt"))
        IterableBulkUpsertUsersOperator(
            task_id="bad_type", users_file=str(bad_cell), field_types={"age": "integer-ish"}
        )
        IterableBulkUpsertUsersOperator(
            task_id="bad_cell", users_file=str(bad_cell), field_types={"age": "int"}
        )
        IterableBulkUpsertUsersOperator(
            task_id="both", users=[{"email": "a@example.com"}], users_file="x.jsonl"
        )

    run = dag_runner(dag)

    assert set(states(run).values()) == {"failed"}
    assert simulator.requests == []
    text = "".join(capfd.readouterr())
    assert "users_file line 3 is not valid JSON" in text
    assert 'users_file line 2: the user has neither "email" nor "userId"' in text
    assert "absent.jsonl' cannot be opened: FileNotFoundError" in text
    assert "cannot tell the format from the extension" in text
    assert "field_types['age'] is 'integer-ish'; use one of str, int, float, bool, date" in text
    assert "users_file line 3: column 'age' is typed int in field_types but holds 'thirty'" in text
    assert "Set exactly one of users" in text


def test_slow_answers_overlap_so_the_rate_limit_is_still_used(simulator: Any) -> None:
    # Every answer takes 0.6 s, three times the 0.2 s between requests at 5 requests/s.
    simulator.add_fault(BULK, delay=0.6, times=10)
    users = [{"email": f"s{i}@example.com"} for i in range(1_000)]
    op = IterableBulkUpsertUsersOperator(task_id="load", users=users, batch_size=100)

    started = time.monotonic()
    summary = op.execute({})  # type: ignore[arg-type]
    elapsed = time.monotonic() - started

    assert summary["batches"] == 10 and summary["successCount"] == 1_000
    starts = sorted(call.received_at for call in simulator.requests_for(BULK))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Paced at the limit (scheduling jitter on a busy machine aside) ...
    assert min(gaps) > 0.1
    assert starts[-1] - starts[0] >= 9 * 0.2 * 0.95
    # ... and not held back by the slow answers: one at a time would take at least 10 x 0.6 s.
    assert elapsed < 5.0
    assert simulator.rate_limited_count(BULK) == 0


def test_refused_batch_stops_the_load_with_what_was_sent(simulator: Any) -> None:
    simulator.add_fault(BULK, delay=0.0)  # batch 1 passes
    simulator.add_fault(BULK, status=400, body={"code": "BadParams", "msg": "boom"})  # batch 2
    users = [{"email": f"r{i}@example.com"} for i in range(5_000)]
    op = IterableBulkUpsertUsersOperator(task_id="load", users=users, max_in_flight=1)

    with pytest.raises(Exception, match=r"sending users 1001-2000 of 5000 \(batch 2\)") as info:
        op.execute({})  # type: ignore[arg-type]

    assert isinstance(info.value, IterableTaskFailedError)  # an AirflowFailException: no task retry
    assert len(simulator.requests_for(BULK)) == 2  # nothing after the refused batch


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a whole number of at least 1 (Iterable's practice: 1000)"),
        ({"batch_size": "100"}, "batch_size must be a whole number of at least 1"),
        ({"max_batch_bytes": 100}, "max_batch_bytes must be a whole number of at least 1024, got 100"),
        ({"max_in_flight": True}, "max_in_flight must be a whole number of at least 1, got True"),
    ],
)
def test_bad_batching_limits_fail_before_any_request(
    simulator: Any, limits: dict[str, Any], message: str
) -> None:
    op = IterableBulkUpsertUsersOperator(task_id="load", users=[{"email": "a@example.com"}], **limits)
    with pytest.raises(AirflowFailException) as caught:
        op.execute({})  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert simulator.requests == []


def test_bulk_input_errors_are_the_providers_config_errors(simulator: Any, tmp_path: Path) -> None:
    from airflow_provider_iterable.exceptions import IterableConfigError

    bad = tmp_path / "bad.csv"
    bad.write_text("email,signup\na@example.com,soon\n")
    for op in (
        IterableBulkUpsertUsersOperator(task_id="t", users=[{"email": "a@example.com"}], batch_size=0),
        IterableBulkUpsertUsersOperator(task_id="t", users='{"email": "a@example.com"}'),
        IterableBulkUpsertUsersOperator(task_id="t", users_file=str(bad), field_types={"signup": "date"}),
    ):
        with pytest.raises(IterableConfigError):
            op.execute({})  # type: ignore[arg-type]
    assert simulator.requests == []


def test_malformed_csv_fails_naming_the_line_for_every_csv_operator(
    dag_runner: Any, simulator: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_iterable.operators import (
        IterableAddSubscribersToListOperator,
        IterableTrackBulkEventsOperator,
    )

    list_id = simulator.add_list("Members")
    # An unclosed quote on line 3 used to take in line 4 as part of ok2's plan, silently.
    users = tmp_path / "users.csv"
    users.write_text(
        'email,plan,seats\nok1@example.com,pro,3\nok2@example.com,"free,4\nok3@example.com,pro,5\n'
    )
    # Here a later quote closes it: still one "cell" swallowing a whole row.
    subscribers = tmp_path / "subscribers.csv"
    subscribers.write_text('email,plan\nok1@example.com,"pro\nok2@example.com,free\nok3@example.com,team"\n')
    events = tmp_path / "events.csv"
    events.write_text('eventName,email,coupon\npurchase,ok1@example.com,"SAVE"10\n')
    header = tmp_path / "header.csv"
    header.write_text('email,"plan\nx"\nok1@example.com,pro\n')
    with DAG(
        "iterable_bulk_malformed_csv", schedule=None, start_date=START, default_args={"retries": 2}
    ) as dag:
        IterableBulkUpsertUsersOperator(task_id="users", users_file=str(users))
        IterableAddSubscribersToListOperator(
            task_id="subscribers", list_id=list_id, subscribers_file=str(subscribers)
        )
        IterableTrackBulkEventsOperator(task_id="events", events_file=str(events))
        IterableBulkUpsertUsersOperator(task_id="header", users_file=str(header))

    run = dag_runner(dag)

    assert states(run) == {"users": "failed", "subscribers": "failed", "events": "failed", "header": "failed"}
    assert simulator.requests == []
    text = "".join(capfd.readouterr())
    assert "users_file line 3 is not valid CSV" in text
    assert "subscribers_file line 2: a quoted cell runs past the end of its line (on to line 4)" in text
    assert "events_file line 2 is not valid CSV" in text
    assert "users_file line 1: a quoted cell runs past the end of its line" in text


def test_csv_cells_with_line_breaks_are_refused_and_json_lines_carries_them(
    simulator: Any, tmp_path: Path
) -> None:
    multiline = tmp_path / "notes.csv"
    multiline.write_text('email,note\nada@example.com,"first line\nsecond line"\n', newline="")
    op = IterableBulkUpsertUsersOperator(task_id="t", users_file=str(multiline))
    with pytest.raises(
        AirflowFailException, match=r"users_file line 2: a quoted cell runs past .* JSON Lines"
    ):
        op.execute({})  # type: ignore[arg-type]
    assert simulator.requests == []

    # Quoted cells on one line, with commas, quotes and CRLF line ends, are fine.
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(b'email,note\r\nada@example.com,"a, ""quoted"" note"\r\n\r\nalan@example.com,plain\r\n')
    IterableBulkUpsertUsersOperator(task_id="t", users_file=str(crlf)).execute({})  # type: ignore[arg-type]
    (call,) = simulator.requests_for(BULK)
    assert call.json == {
        "users": [
            {"email": "ada@example.com", "dataFields": {"note": 'a, "quoted" note'}},
            {"email": "alan@example.com", "dataFields": {"note": "plain"}},
        ]
    }

    lines = tmp_path / "notes.jsonl"
    lines.write_text(json.dumps({"email": "ada@example.com", "dataFields": {"note": "first\nsecond"}}) + "\n")
    IterableBulkUpsertUsersOperator(task_id="t", users_file=str(lines)).execute({})  # type: ignore[arg-type]
    assert simulator.requests_for(BULK)[-1].json["users"][0]["dataFields"]["note"] == "first\nsecond"


def test_failure_text_and_warnings_name_counts_and_debug_names_identifiers(
    dag_runner: Any, simulator: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    users = [{"email": f"ok{i}@example.com"} for i in range(5)] + [
        {"email": "bad-address-one"},
        {"email": "bad-address-two"},
    ]
    with DAG("iterable_bulk_failure_text", schedule=None, start_date=START) as dag:
        IterableBulkUpsertUsersOperator(task_id="strict", users=users)
        IterableBulkUpsertUsersOperator(task_id="tolerant", users=users, fail_on_partial_failure=False)

    run = dag_runner(dag)

    assert states(run) == {"strict": "failed", "tolerant": "success"}
    assert xcom(run, "strict")["failedUpdates"] == {"invalidEmails": ["bad-address-one", "bad-address-two"]}
    text = "".join(capfd.readouterr())
    assert text.count("2 of 7 users failed in Iterable after all 1 batches were sent; invalidEmails: 2.") == 2
    assert "bad-address" not in text  # neither in the exception nor in the WARNING line

    # The identifiers go to DEBUG, from the sender every bulk operator sends through.
    from airflow_provider_iterable.hooks.iterable import IterableHook
    from airflow_provider_iterable.operators._batches import BulkSender

    log = logging.getLogger("test.bulk.identifiers")
    sender = BulkSender(IterableHook().bulk_update_users, noun="user", total=len(users), log=log)
    with caplog.at_level(logging.DEBUG, logger=log.name):
        sender.send_all(iter(users))
    at_debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("bad-address-one" in line and "bad-address-two" in line for line in at_debug)
    assert not any("bad-address" in r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG)


def test_type_mismatch_failures_point_at_field_types(simulator: Any, tmp_path: Path) -> None:
    typed = tmp_path / "typed.csv"
    typed.write_text("email,seats\nada@example.com,3\n")
    IterableBulkUpsertUsersOperator(task_id="t", users_file=str(typed), field_types={"seats": "int"}).execute(
        {}  # type: ignore[arg-type]
    )
    # The same column without field_types is sent as the string "5": the project's field is a number.
    untyped = tmp_path / "untyped.csv"
    untyped.write_text("email,seats\nalan@example.com,5\n")
    op = IterableBulkUpsertUsersOperator(task_id="t", users_file=str(untyped))
    with pytest.raises(AirflowFailException) as caught:
        op.execute({})  # type: ignore[arg-type]
    message = str(caught.value)
    assert "invalidDataEmails: 1 (" in message
    assert "RequestFieldsTypesMismatched" in message and "field_types" in message
    assert "alan@example.com" not in message
