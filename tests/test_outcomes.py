"""decide(): what each upstream answer means for the step, as a table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mfa.belvo import UpstreamAnswer
from mfa.outcomes import LINKS_SESSION_EXPIRED_HINT, Verdict, decide

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
        ("employment-records", 201, []),
        ("investments/portfolios", 201, {"id": "p-1", "type": "FIXED_INCOME"}),  # one object, as the spec
        ("incomes", 201, {"account": {}, "income_streams": []}),  # the spec's POST: one object
        ("incomes", 201, [{"account": {}, "income_streams": []}]),  # the spec's PATCH: a list
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
        ("investments/portfolios", answer(201, [])),
        ("incomes", answer(201, "text")),
    ],
    ids=[
        "links-list",
        "link-without-id",
        "links-not-json",
        "data-object",
        "data-not-json",
        "flagged-not-json",
        "portfolios-list",
        "incomes-string",
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


def test_refused_secret_keys_fail_as_auth_failed():
    body = [{"code": "authentication_failed", "message": "Invalid Secret Keys", "request_id": "d" * 32}]
    decision = decide(answer(401, body), "links")
    assert decision.verdict is Verdict.FAILED
    assert (decision.outcome["code"], decision.outcome["http_status"]) == ("upstream_auth_failed", 401)
    assert decision.outcome["upstream_errors"] == body


def test_a_403_is_a_resource_this_account_may_not_use_not_an_auth_failure():
    body = [{"code": "access_to_resource_denied", "message": "You don't have access to this resource."}]
    decision = decide(answer(403, body), "risk-insights")
    assert decision.verdict is Verdict.FAILED and not decision.uncertain
    assert (decision.outcome["code"], decision.outcome["http_status"]) == ("access_to_resource_denied", 403)


def test_a_400_carries_belvos_errors():
    decision = decide(answer(400, BELVO_ERRORS), "accounts")
    assert decision.verdict is Verdict.FAILED
    assert decision.outcome == {
        "http_status": 400,
        "code": "session_expired",
        "message": "The MFA session has expired",
        "upstream_errors": BELVO_ERRORS,
        "upstream_request_id": "b" * 32,
    }


def test_a_links_session_expired_says_that_a_data_428_needed_its_resource():
    decision = decide(answer(400, BELVO_ERRORS), "links")
    assert decision.outcome["code"] == "session_expired"
    assert decision.outcome["message"] == "The MFA session has expired" + LINKS_SESSION_EXPIRED_HINT


@pytest.mark.parametrize("resource", ["links", "accounts"])
def test_session_expired_after_an_uncertain_attempt_is_an_unknown_outcome(resource):
    decision = decide(answer(400, BELVO_ERRORS), resource, uncertain=True)
    assert decision.verdict is Verdict.FAILED
    assert decision.outcome["code"] == "upstream_outcome_unknown" and decision.outcome["http_status"] == 400
    assert decision.outcome["upstream_errors"] == BELVO_ERRORS  # Belvo's own answer is kept
    other = decide(answer(400, BELVO_ERRORS[1:]), resource, uncertain=True)
    assert (
        other.outcome["code"] == "invalid_link"
    )  # only session_expired could be our earlier attempt's doing


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


@pytest.mark.parametrize(
    ("status", "uncertain"),
    [(408, True), (425, False), (429, False), (500, True), (502, True), (503, True), (504, True)],
)
def test_transient_statuses_are_retried_and_those_belvo_may_have_acted_on_are_uncertain(status, uncertain):
    decision = decide(answer(status, [{"code": "unexpected_error", "request_id": "e" * 32}]), "links")
    assert decision.verdict is Verdict.RETRY
    assert (decision.outcome["code"], decision.outcome["http_status"]) == ("upstream_unavailable", status)
    assert decision.outcome["upstream_request_id"] == "e" * 32
    assert decision.uncertain is uncertain


@pytest.mark.parametrize(("retry_after", "status"), [(30.0, 429), (2.5, 503), (None, 429)])
def test_a_retry_carries_retry_after(retry_after, status):
    decision = decide(answer(status, None, is_json=False, retry_after=retry_after), "links")
    assert (decision.verdict, decision.retry_after) == (Verdict.RETRY, retry_after)


def test_no_answer_at_all_is_retried():
    decision = decide(None, "links")
    assert decision.verdict is Verdict.RETRY and decision.uncertain
    assert decision.outcome["code"] == "upstream_unavailable"
    assert decision.outcome["http_status"] is None
    assert decision.retry_after is None


@pytest.mark.parametrize(
    ("expiry", "seconds"), [(720, 720), ("720", 720), (720.0, 720), ("604800", 604800), (None, None)]
)
def test_a_428s_expiry_is_read_as_the_spec_or_belvos_guide_writes_it(expiry, seconds):
    body = {k: v for k, v in PAUSE.items() if k != "expiry"}
    if expiry is not None:
        body["expiry"] = expiry
    decision = decide(answer(428, [body]), "accounts")
    assert decision.verdict is Verdict.NEXT_STEP and decision.pause is not None
    assert decision.pause.expiry == seconds
    assert decision.pause.expiry_or(600) == (seconds or 600)


@pytest.mark.parametrize(
    "expiry", ["7 20", "-5", "", "1e3", "٧٢٠", "0", "0600", "604801", 0, 720.5, True, [720]]
)
def test_a_428_with_an_expiry_that_is_no_whole_number_of_seconds_is_invalid(expiry):
    decision = decide(answer(428, [{**PAUSE, "expiry": expiry}]), "links")
    assert decision.verdict is Verdict.FAILED
    assert decision.outcome["code"] == "upstream_invalid_response"


# One Belvo answer per row of the README's table "Belvo answer -> what the service records": each row's
# first cell, the answer it stands for, the resource and whether an earlier attempt was uncertain.
_ERRORS = [{"code": "login_error", "message": "Invalid credentials", "request_id": "f" * 32}]
README_ROWS: dict[str, tuple[UpstreamAnswer | None, str, bool]] = {
    "200 / 201, JSON of the resource's shape": (answer(201, ACCOUNTS), "accounts", False),
    "200 / 201 with a body over `RESULT_MAX_BYTES`": (
        UpstreamAnswer(200, None, False, oversized=True),
        "accounts",
        False,
    ),
    "428 with a session": (answer(428, [PAUSE]), "links", False),
    "400 with Belvo's errors (e.g. `login_error`, `session_expired`, `invalid_link`)": (
        answer(400, _ERRORS),
        "links",
        False,
    ),
    "400 `session_expired` after an attempt Belvo may have acted on": (
        answer(400, BELVO_ERRORS),
        "links",
        True,
    ),
    "401: Belvo refused our secret keys": (answer(401, [{"code": "authentication_failed"}]), "links", False),
    "403: a resource this Belvo account may not use": (
        answer(403, [{"code": "access_to_resource_denied"}]),
        "risk-insights",
        False,
    ),
    "404 and other 4xx with Belvo's errors": (answer(404, [{"code": "not_found"}]), "links", False),
    "a 4xx without an error code, or not JSON": (answer(400, None, is_json=False), "links", False),
    "no answer (timeout, dropped or truncated connection), 408, 5xx": (None, "links", False),
    "425, 429": (answer(429, None, is_json=False), "links", False),
    "a 2xx that is not JSON or not of the resource's shape; 204; 3xx": (
        answer(200, {"x": 1}),
        "accounts",
        False,
    ),
    "428 without a usable session": (answer(428, [{"code": "token_required"}]), "links", False),
}
# What a row's "the step" cell begins with, as decide's verdict.
_VERDICTS = {
    "succeeded": Verdict.SUCCEEDED,
    "awaiting_token": Verdict.NEXT_STEP,
    "failed": Verdict.FAILED,
    "retried": Verdict.RETRY,
}


def _readme_table() -> list[list[str]]:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text.split("### Belvo answer -> what the service records", 1)[1]
    lines = section.split("| --- | --- | --- |\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]


def test_the_readme_table_is_what_decide_records():
    rows = _readme_table()
    assert [row[0] for row in rows] == list(README_ROWS), "every row has its answer here, and no other"
    for answered, step, code in rows:
        upstream, resource, uncertain = README_ROWS[answered]
        decision = decide(upstream, resource, uncertain=uncertain)
        verdict = next(
            v for word, v in _VERDICTS.items() if step.startswith(f"`{word}`") or step.startswith(word)
        )
        assert decision.verdict is verdict, answered
        assert decision.uncertain is ("Belvo may have acted on it" in step), answered
        if code == "`null`":
            assert decision.outcome["code"] is None, answered
        elif code.startswith("Belvo's"):
            assert decision.outcome["code"] == upstream.body[0]["code"], answered
            named = re.findall(r"`([a-z_]+)`", code)
            assert not named or named == [decision.outcome["code"]], answered
        elif code != "—":
            assert decision.outcome["code"] == re.findall(r"`([a-z_]+)`", code)[0], answered


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
