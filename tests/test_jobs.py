"""The resume worker end to end: each Belvo answer, through the real worker, recorded on the session."""

from __future__ import annotations

import time

import pytest

from mfa.keys import token_key
from tests.stack import epoch
from tests.support import first


def _resume(api, sandbox, token: str | None = "111111", resource: str = "links", **create):
    pause = sandbox.pause(resource=resource, **create.pop("pause", {}))
    s = api.created(pause, resource=resource, **create)
    r = api.submit(s["id"], token, credential=s["client_secret"])
    assert r.status_code == 202, r.text
    return s, first(pause)


def _patches(sandbox, belvo_session: str) -> list[dict]:
    return sandbox.calls(method="PATCH", session=belvo_session)


def test_success_records_belvo_body_and_forgets_the_token(api, sandbox, redis):
    s, tr = _resume(api, sandbox)
    done = api.wait(s["id"])
    assert done["status"] == "succeeded"
    assert done["outcome"]["http_status"] == 200
    assert done["outcome"]["result"]["id"] == tr["link"] and done["outcome"]["result"]["status"] == "valid"
    assert done["outcome"]["code"] is None
    [call] = _patches(sandbox, tr["session"])
    assert call["path"] == "/api/links/" and call["auth_ok"] is True
    assert call["token"] == "111111" and call["link"] == tr["link"]
    assert set(call["body_keys"]) == {"session", "token", "link"}
    assert not redis.exists(token_key(s["id"]))


def test_chained_mfa_goes_back_to_awaiting_token_with_the_next_challenge(api, sandbox):
    s, tr = _resume(api, sandbox, "999999")
    step2 = api.wait(s["id"], {"awaiting_token"}, step=2)
    assert step2["challenge"]["type"] == "numeric" and step2["outcome"] is None
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    assert api.wait(s["id"])["status"] == "succeeded"
    patches = sandbox.calls(method="PATCH", link=tr["link"])
    assert len(patches) == 2 and patches[0]["session"] == tr["session"] != patches[1]["session"]


def test_data_resource_sends_save_data(api, sandbox):
    s, tr = _resume(api, sandbox, resource="accounts", save_data=False)
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and isinstance(done["outcome"]["result"], list)
    [call] = _patches(sandbox, tr["session"])
    assert call["path"] == "/api/accounts/" and call["save_data"] is False


def test_data_resource_without_save_data_omits_it(api, sandbox):
    s, tr = _resume(api, sandbox, resource="transactions")
    assert api.wait(s["id"])["outcome"]["http_status"] == 201
    [call] = _patches(sandbox, tr["session"])
    assert "save_data" not in call["body_keys"]


def test_an_approval_elsewhere_resumes_without_a_token(api, sandbox):
    s, tr = _resume(api, sandbox, token=None, pause={"token_type": "approval"})
    assert api.wait(s["id"])["status"] == "succeeded"
    [call] = _patches(sandbox, tr["session"])
    assert call["has_token"] is False and "token" not in call["body_keys"]


def test_rejected_token_fails_with_belvo_error(api, sandbox):
    s, tr = _resume(api, sandbox, "000000")
    done = api.wait(s["id"])
    assert done["status"] == "failed"
    out = done["outcome"]
    assert out["http_status"] == 400 and out["code"] == "invalid_token"
    assert out["upstream_errors"][0]["code"] == "invalid_token"
    assert len(out["upstream_request_id"]) == 32
    assert len(_patches(sandbox, tr["session"])) == 1


@pytest.mark.parametrize(
    ("status", "code"), [(401, "upstream_auth_failed"), (403, "access_to_resource_denied")]
)
def test_refusals_by_belvo_are_not_retried_and_only_401_is_an_auth_failure(api, sandbox, status, code):
    sandbox.fault("status", status=status, count=5)
    s, tr = _resume(api, sandbox, resource="risk-insights")
    done = api.wait(s["id"])
    assert done["status"] == "failed" and done["outcome"]["code"] == code
    assert done["outcome"]["http_status"] == status
    assert len(_patches(sandbox, tr["session"])) == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"mode": "status", "status": 500},
        {"mode": "status", "status": 503},
        {"mode": "status", "status": 408},
        {"mode": "status", "status": 429, "retry_after": 0},
        {"mode": "hang", "delay_seconds": 3},
        {"mode": "drop"},
        {"mode": "truncated"},
    ],
    ids=["500", "503", "408", "429", "timeout", "drop", "truncated"],
)
def test_transient_failures_are_retried_then_succeed(api, sandbox, fault):
    sandbox.fault(**fault)
    s, tr = _resume(api, sandbox)
    done = api.wait(s["id"])
    assert done["status"] == "succeeded", done
    assert len(_patches(sandbox, tr["session"])) == 2


def test_persistent_outage_fails_after_max_attempts(api, sandbox):
    sandbox.fault("status", status=500, count=10)
    s, tr = _resume(api, sandbox)
    done = api.wait(s["id"])
    assert done["status"] == "failed" and done["outcome"]["code"] == "upstream_unavailable"
    assert done["outcome"]["http_status"] == 500
    assert len(_patches(sandbox, tr["session"])) == 3  # RESUME_MAX_ATTEMPTS in the test environment


def test_no_retry_is_scheduled_past_expiry(api, sandbox):
    sandbox.fault("status", status=429, retry_after=60, count=5)
    s, tr = _resume(api, sandbox, pause={"expiry": 30})
    done = api.wait(s["id"])
    assert done["status"] == "failed" and done["outcome"]["code"] == "upstream_unavailable"
    assert len(_patches(sandbox, tr["session"])) == 1


@pytest.mark.parametrize(
    "fault",
    [{"mode": "html"}, {"mode": "bad_shape"}, {"mode": "status", "status": 204}],
    ids=["html", "bad_shape", "204"],
)
def test_unusable_2xx_fails_as_invalid_response(api, sandbox, fault):
    sandbox.fault(**fault)
    s, _ = _resume(api, sandbox)
    done = api.wait(s["id"])
    assert done["status"] == "failed" and done["outcome"]["code"] == "upstream_invalid_response"


def test_a_client_secret_sees_the_outcome_code_never_belvos_bodies(api, sandbox):
    s, tr = _resume(api, sandbox)
    assert api.wait(s["id"])["outcome"]["result"]["id"] == tr["link"]  # the API key sees Belvo's body
    seen = api.get(s["id"], credential=s["client_secret"]).json()
    assert seen["status"] == "succeeded" and seen["outcome"]["http_status"] == 200
    assert seen["outcome"]["result"] is None and seen["outcome"]["upstream_errors"] is None
    failed, _ = _resume(api, sandbox, "000000")
    api.wait(failed["id"])
    seen = api.get(failed["id"], credential=failed["client_secret"]).json()["outcome"]
    assert (seen["code"], seen["upstream_errors"], seen["upstream_request_id"]) == (
        "invalid_token",
        None,
        None,
    )
    assert seen["message"]


@pytest.mark.parametrize(("form", "seconds"), [("string", 9600), ("absent", 75)])
def test_a_chained_428_with_expiry_as_a_string_or_none_opens_the_next_step(make_api, sandbox, form, seconds):
    api = make_api(DEFAULT_MFA_EXPIRY_SECONDS="75")
    s, _ = _resume(api, sandbox, "999999")
    sandbox.configure(token_required_expiry=form)  # the answer to the resume is the next 428
    before = time.time()
    step2 = api.wait(s["id"], {"awaiting_token"}, step=2)
    assert abs(epoch(step2["expires_at"]) - (before + seconds)) < 5
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    assert api.wait(s["id"])["status"] == "succeeded"


@pytest.mark.parametrize(
    "fault",
    [
        {"mode": "drop", "process": True},
        {"mode": "status", "status": 408, "process": True},
        {"mode": "status", "status": 500, "process": True},
        {"mode": "hang", "delay_seconds": 3, "process": True},
    ],
    ids=["dropped", "408", "500", "timeout"],
)
def test_session_expired_after_an_attempt_belvo_may_have_acted_on_is_an_unknown_outcome(api, sandbox, fault):
    sandbox.fault(**fault)  # Belvo resumes the session, and its answer is lost or is an error
    s, tr = _resume(api, sandbox)
    done = api.wait(s["id"])
    assert done["status"] == "failed" and done["outcome"]["code"] == "upstream_outcome_unknown", done
    assert [c["status"] for c in _patches(sandbox, tr["session"])][-1] == 400  # Belvo: session_expired
    assert done["outcome"]["upstream_errors"][0]["code"] == "session_expired"


def test_a_429_is_not_uncertain_so_a_later_session_expired_reads_as_belvo_says(api, sandbox):
    # A 429 refuses the call before any work; here the sandbox spent the session anyway, so the retry
    # meets session_expired, which the service records as Belvo's answer, not as an unknown outcome.
    sandbox.fault("status", status=429, retry_after=0, process=True)
    s, _ = _resume(api, sandbox, resource="accounts")
    done = api.wait(s["id"])
    assert (done["status"], done["outcome"]["code"]) == ("failed", "session_expired")


def test_a_data_428_handed_over_without_its_resource_says_so_when_belvo_refuses_it(api, sandbox):
    pause = sandbox.pause(resource="accounts")
    s = api.created(pause)  # `resource` left out: the resume goes to PATCH /api/links/
    assert s["resource"] == "links"
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    done = api.wait(s["id"])
    assert (done["status"], done["outcome"]["code"]) == ("failed", "session_expired")
    assert "needed that call's `resource`" in done["outcome"]["message"]
    [call] = _patches(sandbox, first(pause)["session"])
    assert call["path"] == "/api/links/"


def test_portfolios_resume_without_save_data_and_answer_one_object(api, sandbox):
    s, tr = _resume(api, sandbox, resource="investments/portfolios", save_data=False)
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and isinstance(done["outcome"]["result"], dict)
    [call] = _patches(sandbox, tr["session"])
    assert call["path"] == "/investments/portfolios/" and "save_data" not in call["body_keys"]


def test_employment_records_resume_on_their_collection(api, sandbox):
    s, tr = _resume(api, sandbox, resource="employment-records", save_data=True)
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and isinstance(done["outcome"]["result"], list)
    [call] = _patches(sandbox, tr["session"])
    assert (call["path"], call["save_data"]) == ("/api/employment-records/", True)
