"""The /v1/sessions contract over real HTTP against gunicorn, Redis and an RQ worker."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from tests.support import SECOND_API_KEY, first


def _problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code and body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    assert body["request_id"] == r.headers["X-Request-ID"]
    assert "Traceback" not in r.text
    return body


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_create_answers_the_session_with_a_client_secret(api, sandbox):
    pause = sandbox.pause(token_type="qr_code")
    before = time.time()
    r = api.create(pause, external_ref="order-42")
    assert r.status_code == 201, r.text
    s = r.json()
    tr = first(pause)
    assert s["id"] and s["id"] != tr["session"]
    assert r.headers["Location"] == f"/v1/sessions/{s['id']}"
    assert s["status"] == "awaiting_token" and s["step"] == 1 and s["resource"] == "links"
    assert s["link"] == tr["link"] and s["external_ref"] == "order-42"
    assert s["challenge"] == tr["token_generation_data"]
    assert s["outcome"] is None
    assert abs(_ts(s["expires_at"]) - (before + tr["expiry"])) < 5
    assert s["client_secret"].startswith("mcs_") and len(s["client_secret"]) >= 40
    read = api.get(s["id"]).json()
    assert "client_secret" not in read and "token" not in read
    assert {k: v for k, v in s.items() if k != "client_secret"} == read


def test_create_takes_the_single_object_form_and_data_resources(api, sandbox):
    sandbox.configure(token_required_shape="object")
    pause = sandbox.pause(resource="accounts")
    assert isinstance(pause, dict)
    s = api.created(pause, resource="accounts", save_data=False)
    assert s["resource"] == "accounts" and s["link"] == pause["link"]


def test_a_belvo_session_is_stored_once(api, sandbox):
    pause = sandbox.pause()
    api.created(pause)
    _problem(api.create(pause), 409, "duplicate_session")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda tr: tr.pop("session"), "session"),
        (lambda tr: tr.update(session="bad id!"), "session"),
        (lambda tr: tr.update(session="a" * 65), "session"),
        (lambda tr: tr.pop("link"), "link"),
        (lambda tr: tr.update(link="not-a-uuid"), "link"),
        (lambda tr: tr.update(expiry=0), "expiry"),
        (lambda tr: tr.update(expiry="6oo"), "expiry"),
        (lambda tr: tr.update(expiry="-600"), "expiry"),
        (lambda tr: tr.update(expiry=True), "expiry"),
        (lambda tr: tr.update(token_generation_data="numeric"), "token_generation_data"),
    ],
)
def test_create_rejects_a_malformed_428_naming_the_field(api, sandbox, mutate, field):
    tr = first(sandbox.pause())
    mutate(tr)
    body = _problem(api.create(tr), 422, "validation_error")
    assert any(field in e["field"] for e in body["errors"]), body["errors"]


@pytest.mark.parametrize(("expiry", "seconds"), [("720", 720), (None, 90)], ids=["string", "absent"])
def test_create_reads_expiry_as_belvos_guide_writes_it_and_defaults_a_missing_one(
    make_api, sandbox, expiry, seconds
):
    api = make_api(DEFAULT_MFA_EXPIRY_SECONDS="90")
    tr = first(sandbox.pause())
    tr.pop("expiry")
    if expiry is not None:
        tr["expiry"] = expiry
    before = time.time()
    s = api.created([tr])
    assert abs(_ts(s["expires_at"]) - (before + seconds)) < 5


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"resource": "statements"}, "resource"),
        ({"save_data": "yes"}, "save_data"),
        ({"external_ref": "x" * 201}, "external_ref"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_create_rejects_bad_options(api, sandbox, extra, field):
    body = _problem(api.create(sandbox.pause(), **extra), 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == [field]


def test_bad_bodies_are_problems_not_crashes(api):
    _problem(api.request("POST", "/v1/sessions", data="{not json"), 400, "invalid_json")
    _problem(api.request("POST", "/v1/sessions", json=[]), 422, "validation_error")
    _problem(api.request("POST", "/v1/sessions", json={"token_required": []}), 422, "validation_error")
    huge = json.dumps({"token_required": {"session": "a", "pad": "x" * 70_000}})
    _problem(api.request("POST", "/v1/sessions", data=huge), 413, "payload_too_large")
    _problem(api.request("GET", "/v1/nowhere"), 404, "not_found")
    _problem(api.request("DELETE", "/v1/sessions"), 405, "method_not_allowed")


def test_credentials(api, sandbox):
    s = api.created(sandbox.pause())
    other = api.created(sandbox.pause())
    _problem(api.request("POST", "/v1/sessions", credential=None, json={}), 401, "unauthorized")
    _problem(api.request("POST", "/v1/sessions", credential="wrong-key", json={}), 401, "invalid_credentials")
    # A client secret opens its own session only, and never creates sessions.
    _problem(
        api.request("POST", "/v1/sessions", credential=s["client_secret"], json={}),
        401,
        "invalid_credentials",
    )
    assert api.get(s["id"], credential=s["client_secret"]).status_code == 200
    assert api.get(s["id"], credential=SECOND_API_KEY).status_code == 200  # keys rotate: both are valid
    _problem(api.get(s["id"], credential=None), 401, "unauthorized")
    # A credential that does not open the session answers exactly as a session that does not exist.
    foreign = api.get(s["id"], credential=other["client_secret"])
    missing = api.get("mfa_" + "0" * 32, credential=other["client_secret"])
    _problem(foreign, 404, "session_not_found")
    _problem(missing, 404, "session_not_found")
    _problem(api.submit(s["id"], credential=other["client_secret"]), 404, "session_not_found")
    _problem(api.cancel(s["id"], credential="wrong"), 404, "session_not_found")
    assert api.get(s["id"]).json()["status"] == "awaiting_token"


@pytest.mark.parametrize("token", ["", "1" * 65, "12\n34", "12\x0034", 123456, None])
def test_submit_rejects_bad_tokens(api, sandbox, token):
    s = api.created(sandbox.pause())
    body = {} if token is None else {"token": token}
    r = api.request("POST", f"/v1/sessions/{s['id']}/token", json=body)
    problem = _problem(r, 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == ["token"]
    assert str(token) not in json.dumps(problem["errors"]) or token in ("", None)
    assert api.get(s["id"]).json()["status"] == "awaiting_token"


def test_submit_answers_202_once_then_409(api, sandbox):
    s = api.created(sandbox.pause())
    r = api.submit(s["id"], "111111", credential=s["client_secret"])
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "submitted" and r.json()["id"] == s["id"]
    _problem(api.submit(s["id"], "111111"), 409, "session_not_awaiting_token")


def test_twenty_concurrent_submits_make_one_upstream_call(api, sandbox):
    pause = sandbox.pause()
    s = api.created(pause)
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: api.submit(s["id"], "111111").status_code, range(20)))
    assert sorted(answers) == [202] + [409] * 19
    assert api.wait(s["id"])["status"] == "succeeded"
    assert len(sandbox.calls(method="PATCH", session=first(pause)["session"])) == 1


def test_idempotency_key_replays_the_first_answer(api, sandbox):
    pause = sandbox.pause()
    s = api.created(pause)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    sandbox.fault("delay", delay_seconds=0.5)  # the step stays open (under the 1 s timeout) for the checks
    r1 = api.submit(s["id"], "111111", headers=key)
    r2 = api.submit(s["id"], "111111", headers=key)
    assert r1.status_code == r2.status_code == 202
    assert r2.json() == r1.json() and r2.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in r1.headers
    _problem(api.submit(s["id"], "222222", headers=key), 422, "idempotency_key_reused")
    _problem(
        api.submit(s["id"], "111111", headers={"Idempotency-Key": "k" * 256}), 400, "invalid_idempotency_key"
    )
    api.wait(s["id"])
    assert len(sandbox.calls(method="PATCH", session=first(pause)["session"])) == 1
    assert api.submit(s["id"], "111111", headers=key).json() == r1.json()  # replayed after the step ended too


def test_cancel(api, sandbox):
    s = api.created(sandbox.pause())
    r = api.cancel(s["id"], credential=s["client_secret"])
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["outcome"]["code"] == "cancelled"
    _problem(api.cancel(s["id"]), 409, "session_not_awaiting_token")
    _problem(api.submit(s["id"]), 409, "session_not_awaiting_token")
    assert sandbox.calls(method="PATCH") == []


def test_cancel_refused_once_submitted(api, sandbox):
    s = api.created(sandbox.pause())
    assert api.submit(s["id"]).status_code == 202
    _problem(api.cancel(s["id"]), 409, "session_not_awaiting_token")


def test_expired_session_reads_expired_at_once_and_refuses_tokens(api, sandbox, redis):
    s = api.created(sandbox.pause(expiry=1))
    deadline = _ts(s["expires_at"])
    while time.time() < deadline:  # Belvo's clock: the session is open for one second
        time.sleep(0.05)
    read = api.get(s["id"]).json()
    assert read["status"] == "expired" and read["outcome"]["code"] == "session_expired"
    _problem(api.submit(s["id"]), 410, "session_expired")
    _problem(api.cancel(s["id"]), 409, "session_not_awaiting_token")
    assert sandbox.calls(method="PATCH") == []


def test_health_probes(api):
    assert api.request("GET", "/healthz", credential=None).json() == {"status": "ok"}
    assert api.request("GET", "/readyz", credential=None).json() == {"status": "ready"}


def test_request_id_is_echoed_and_security_headers_sent(api):
    r = api.request("GET", "/healthz", credential=None, headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"
    r = api.request("GET", "/healthz", credential=None, headers={"X-Request-ID": "bad id\twith spaces"})
    assert len(r.headers["X-Request-ID"]) == 32
