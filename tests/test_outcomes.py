"""decide(): what each upstream answer means for the step, as a table."""

from __future__ import annotations

from typing import Any

import pytest

from mfa.belvo import UpstreamAnswer
from mfa.outcomes import Verdict, decide

LINK = "8848bd0c-9c7e-4f53-a732-ec896b11d4c4"
LINK_OBJECT = {"id": LINK, "institution": "heimdall_mx_retail", "status": "valid"}
ACCOUNTS = [{"id": "0d3ffb69-f83b-456e-ad8e-208d0998d71d", "link": LINK}]
PAUSE = {
    "code": "token_required",
    "message": "A MFA token is required by the institution to login",
    "request_id": "a" * 32,
    "session": "2675b703b9d4451f8d4861a3eee54449",
    "expiry": 9600,
    "link": LINK,
    "token_generation_data": {
        "type": "numeric",
        "instructions": "Enter the code",
        "expects_user_input": True,
    },
}
BELVO_ERRORS = [
    {"code": "session_expired", "message": "The MFA session has expired", "request_id": "b" * 32},
    {"code": "invalid_link", "message": "The link is invalid", "request_id": "c" * 32},
]


def answer(
    status: int, body: Any = None, is_json: bool = True, retry_after: float | None = None
) -> UpstreamAnswer:
    return UpstreamAnswer(status, body, is_json and body is not None, retry_after)


@pytest.mark.parametrize(
    ("resource", "status", "body"),
    [
        ("links", 200, LINK_OBJECT),
        ("links", 201, LINK_OBJECT),
        ("accounts", 201, ACCOUNTS),
        ("transactions", 200, []),
        ("investments/portfolios", 201, []),
    ],
)
def test_a_well_formed_2xx_succeeds_with_the_result(resource, status, body):
    decision = decide(answer(status, body), resource)
    assert decision.verdict is Verdict.SUCCEEDED
    assert decision.outcome["result"] == body
    assert decision.outcome["http_status"] == status
    assert decision.outcome["upstream_errors"] is None


@pytest.mark.parametrize(
    ("resource", "upstream"),
    [
        ("links", answer(200, [LINK_OBJECT])),
        ("links", answer(200, {"institution": "heimdall_mx_retail"})),
        ("links", answer(201, None, is_json=False)),
        ("accounts", answer(201, LINK_OBJECT)),
        ("accounts", answer(200, None, is_json=False)),
        ("links", UpstreamAnswer(200, LINK_OBJECT, is_json=False)),
    ],
    ids=[
        "links-list",
        "link-without-id",
        "links-not-json",
        "data-object",
        "data-not-json",
        "flagged-not-json",
    ],
)
def test_a_malformed_2xx_fails_as_invalid_response(resource, upstream):
    decision = decide(upstream, resource)
    assert decision.verdict is Verdict.FAILED
    assert decision.outcome["code"] == "upstream_invalid_response"
    assert "result" not in decision.outcome


@pytest.mark.parametrize(
    "body", [[PAUSE], PAUSE, [PAUSE, {**PAUSE, "session": "other"}]], ids=["list", "object", "two"]
)
def test_428_with_a_session_is_another_step(body):
    decision = decide(answer(428, body), "links")
    assert decision.verdict is Verdict.NEXT_STEP
    assert decision.pause is not None
    assert decision.pause.session == PAUSE["session"]
    assert (decision.pause.expiry, str(decision.pause.link)) == (9600, LINK)
    assert decision.pause.token_generation_data.type == "numeric"


@pytest.mark.parametrize(
    "upstream",
    [
        answer(428, {k: v for k, v in PAUSE.items() if k != "session"}),
        answer(428, [{"code": "token_required", "message": "no session"}]),
        answer(428, {**PAUSE, "session": "not a valid id!"}),
        answer(428, []),
        answer(428, None, is_json=False),
    ],
    ids=["no-session", "list-no-session", "bad-session", "empty-list", "not-json"],
)
def test_428_without_a_usable_session_fails_as_invalid_response(upstream):
    decision = decide(upstream, "links")
    assert decision.verdict is Verdict.FAILED
    assert decision.outcome["code"] == "upstream_invalid_response"
    assert decision.pause is None


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_fail_as_auth_failed(status):
    body = [{"code": "authentication_failed", "message": "Invalid credentials", "request_id": "d" * 32}]
    decision = decide(answer(status, body), "links")
    assert decision.verdict is Verdict.FAILED
    assert (decision.outcome["code"], decision.outcome["http_status"]) == ("upstream_auth_failed", status)
    assert decision.outcome["upstream_errors"] == body


def test_a_400_carries_belvos_errors():
    decision = decide(answer(400, BELVO_ERRORS), "links")
    assert decision.verdict is Verdict.FAILED
    assert decision.outcome == {
        "http_status": 400,
        "code": "session_expired",
        "message": "The MFA session has expired",
        "upstream_errors": BELVO_ERRORS,
        "upstream_request_id": "b" * 32,
    }


def test_a_400_with_a_single_error_object_is_read_as_a_list_of_one():
    error = BELVO_ERRORS[1]
    decision = decide(answer(400, error), "accounts")
    assert (decision.outcome["code"], decision.outcome["upstream_errors"]) == ("invalid_link", [error])


@pytest.mark.parametrize(
    ("upstream", "code"),
    [
        (answer(404, {"detail": "Not found."}), "upstream_rejected"),
        (answer(404, None, is_json=False), "upstream_rejected"),
        (answer(400, "<html>Bad request</html>", is_json=False), "upstream_rejected"),
        (answer(400, None, is_json=False), "upstream_rejected"),
        (answer(400, [{"message": "no code"}]), "upstream_rejected"),
        (answer(302), "upstream_invalid_response"),
        (answer(204), "upstream_invalid_response"),
    ],
    ids=["404-json", "404-not-json", "400-html", "400-empty", "400-no-code", "302", "204"],
)
def test_other_answers_fail_with_a_code_of_our_own(upstream, code):
    decision = decide(upstream, "links")
    assert decision.verdict is Verdict.FAILED
    assert (decision.outcome["code"], decision.outcome["http_status"]) == (code, upstream.status)
    assert decision.outcome["message"]


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status):
    decision = decide(answer(status, [{"code": "unexpected_error", "request_id": "e" * 32}]), "links")
    assert decision.verdict is Verdict.RETRY
    assert (decision.outcome["code"], decision.outcome["http_status"]) == ("upstream_unavailable", status)
    assert decision.outcome["upstream_request_id"] == "e" * 32


@pytest.mark.parametrize(("retry_after", "status"), [(30.0, 429), (2.5, 503), (None, 429)])
def test_a_retry_carries_retry_after(retry_after, status):
    decision = decide(answer(status, None, is_json=False, retry_after=retry_after), "links")
    assert (decision.verdict, decision.retry_after) == (Verdict.RETRY, retry_after)


def test_no_answer_at_all_is_retried():
    decision = decide(None, "links")
    assert decision.verdict is Verdict.RETRY
    assert decision.outcome["code"] == "upstream_unavailable"
    assert decision.outcome["http_status"] is None
    assert decision.retry_after is None


def test_an_oversized_2xx_succeeds_without_its_body():
    """Belvo acted; its body is too large to read, so the backend reads it from Belvo."""
    for status in (200, 201):
        decision = decide(UpstreamAnswer(status, None, False, oversized=True), "transactions")
        assert decision.verdict is Verdict.SUCCEEDED
        assert decision.outcome["code"] == "result_too_large" and decision.outcome["result"] is None
        assert decision.outcome["http_status"] == status


def test_an_oversized_error_list_keeps_the_code_not_the_list():
    errors = [{"code": "invalid_token", "message": "x" * 10_000, "request_id": "r1"}]
    decision = decide(answer(400, errors), "links")
    assert decision.verdict is Verdict.FAILED and decision.outcome["code"] == "invalid_token"
    assert decision.outcome["upstream_errors"] is None
    small = [{"code": "invalid_token", "message": "Invalid token", "request_id": "r1"}]
    assert decide(answer(400, small), "links").outcome["upstream_errors"] == small
