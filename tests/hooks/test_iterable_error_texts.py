"""Exception texts name no person: Iterable's echoed e-mail addresses are masked, the attributes keep them."""

from __future__ import annotations

import pickle
import traceback

import pytest

from airflow_provider_iterable.exceptions import IterableApiError
from airflow_provider_iterable.testing import IterableSimulator

from .conftest import HookFactory

ADDRESSES = ("ada.lovelace@example.com", "grace+ops@example.org", "not-quite@valid")
ECHOING_ANSWER = {
    "code": "BadParams",
    "msg": f"Invalid email {ADDRESSES[0]}",
    "params": {"failedUpdates": {"invalidEmails": list(ADDRESSES)}, "email": ADDRESSES[0]},
}


def texts_of(error: BaseException) -> list[str]:
    return [
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        str(pickle.loads(pickle.dumps(error))),
    ]


def assert_masked(texts: list[str]) -> None:
    everything = "\n".join(texts)
    for address in ADDRESSES:
        assert address.split("@")[0] not in everything
    assert "***@example.com" in everything


def test_e_mail_addresses_in_msg_and_params_are_masked_in_the_message(
    sim: IterableSimulator, make_hook: HookFactory
):
    sim.add_fault("POST /api/users/update", status=400, body=ECHOING_ANSWER)
    with pytest.raises(IterableApiError) as caught:
        make_hook().upsert_user(email=ADDRESSES[0])
    error = caught.value
    # Code that handles the error still reads Iterable's answer whole.
    assert error.msg == ECHOING_ANSWER["msg"]
    assert error.params == ECHOING_ANSWER["params"]
    assert_masked(texts_of(error))
    assert "Invalid email ***@example.com" in str(error)
    assert '"invalidEmails": ["***@example.com", "***@example.org", "***@valid"]' in str(error)


def test_the_error_raised_after_the_last_retry_is_masked_too(sim: IterableSimulator, make_hook: HookFactory):
    # A safe endpoint answering 500 is retried until the deadline; the final error is rebuilt.
    sim.add_fault("POST /api/users/update", status=500, body=ECHOING_ANSWER, times=10)
    hook = make_hook(hook_kwargs={"max_attempts": 2, "retry_deadline": 5})
    with pytest.raises(IterableApiError) as caught:
        hook.upsert_user(email=ADDRESSES[0])
    assert "gave up after 2 attempts" in str(caught.value)
    assert caught.value.params == ECHOING_ANSWER["params"]
    assert_masked(texts_of(caught.value))


def test_a_plain_text_answer_is_masked(sim: IterableSimulator, make_hook: HookFactory):
    sim.add_fault("GET /api/lists", status=400, body=f"Bad request for {ADDRESSES[0]}")
    with pytest.raises(IterableApiError) as caught:
        make_hook().get_lists()
    assert "Bad request for ***@example.com" in str(caught.value)
    assert ADDRESSES[0] in (caught.value.msg or "")


def test_a_long_params_list_is_cut_after_masking():
    addresses = [f"person{n:04d}@example.com" for n in range(100)]
    error = IterableApiError(
        status=200, endpoint="POST /api/users/bulkUpdate", params={"invalidEmails": addresses}
    )
    assert "person" not in str(error)
    assert str(error).endswith("...]")
