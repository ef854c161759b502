"""The flows the service starts, end to end against the sandbox: it registers links and retrieves data,
pausing for MFA. Registration after a lost answer: tests/test_registration.py; the bodies' validation:
tests/test_bodies.py; re-authentication: tests/test_link_updates.py."""

from __future__ import annotations

import pytest

from app import create_app
from tests.support import API_KEY, FINAL


def _register(api, **body):
    fields = {"institution": "heimdall_mx_retail", **body}
    return api.request("POST", "/v1/links", json=fields)


def _started(r, status: str) -> dict:
    assert r.status_code == 202, r.text
    s = r.json()
    assert s["status"] in {status, "awaiting_token", *FINAL}
    assert s["client_secret"].startswith("mcs_") and r.headers["Location"] == f"/v1/sessions/{s['id']}"
    return s


def _calls(sandbox, **filters):
    return sandbox.calls(**filters)


def test_register_without_mfa_succeeds_with_the_link(api, sandbox):
    s = _started(
        _register(api, username="user_valid", password="pass_valid", external_ref="ref-1"), "registering"
    )
    assert s["link"] is None
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and done["external_ref"] == "ref-1"
    link = done["outcome"]["result"]
    assert done["outcome"]["http_status"] == 201 and link["status"] == "valid"
    assert done["link"] == link["id"]  # as an MFA flow's session has it
    assert link["external_id"] == s["id"]  # none given: the service names the link after its session
    assert link["access_mode"] == "recurrent"  # Belvo's default, not sent by the service
    [call] = _calls(sandbox, kind="register")
    assert call["method"] == "POST" and call["path"] == "/api/links/"
    assert call["body_keys"] == ["external_id", "institution", "password", "username"]


def test_register_sends_belvos_own_fields_as_given(api, sandbox):
    fields = {
        "access_mode": "single",
        "credentials_storage": "30d",
        "stale_in": "365d",
        "fetch_historical": True,
        "username_type": "001",
        "external_id": "user-4242",
    }
    s = _started(
        _register(api, institution="erebor_mx_retail", username="ana", password="pw", **fields), "registering"
    )
    link = api.wait(s["id"])["outcome"]["result"]
    assert (link["access_mode"], link["external_id"]) == ("single", "user-4242")
    [call] = _calls(sandbox, kind="register")
    assert set(fields) | {"institution", "username", "password"} == set(call["body_keys"])


def test_register_without_a_password_where_the_spec_allows_it(api, sandbox):
    s = _started(_register(api, institution="erebor_mx_retail", username="ana"), "registering")
    assert api.wait(s["id"])["status"] == "succeeded"
    assert "password" not in _calls(sandbox, kind="register")[0]["body_keys"]


def test_register_pausing_for_a_numeric_token_then_two_steps(api, sandbox):
    s = _started(_register(api, username="mfa_numeric", password="numeric_code"), "registering")
    paused = api.wait(s["id"], {"awaiting_token"})
    assert paused["step"] == 1 and paused["challenge"]["type"] == "numeric"
    assert paused["link"] and paused["expires_at"]
    cs = s["client_secret"]
    assert api.submit(s["id"], "999999", credential=cs).status_code == 202
    step2 = api.wait(s["id"], {"awaiting_token"}, step=2)
    assert api.submit(s["id"], "111111", credential=cs).status_code == 202
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and done["step"] == 2
    assert done["outcome"]["result"]["id"] == paused["link"] == step2["link"]
    assert len(_calls(sandbox, kind="register")) == 1
    assert [c["kind"] for c in _calls(sandbox, link=paused["link"])] == ["resume", "resume"]


def test_register_with_qr_code_challenge(api, sandbox):
    s = _started(_register(api, username="mfa_qr", password="qr_code"), "registering")
    paused = api.wait(s["id"], {"awaiting_token"})
    assert paused["challenge"]["type"] == "qr_code" and paused["challenge"]["value"]


def test_register_with_a_device_code_submitted_like_any_token(api, sandbox):
    s = _started(_register(api, username="mfa_default", password="pass_valid"), "registering")
    paused = api.wait(s["id"], {"awaiting_token"})
    assert (paused["challenge"]["type"], paused["challenge"]["expects_user_input"]) == ("device", True)
    assert api.submit(s["id"], "111111").status_code == 202
    assert api.wait(s["id"])["status"] == "succeeded"


def test_register_with_an_approval_elsewhere_resumes_without_token(api, sandbox):
    s = _started(_register(api, username="mfa_approval", password="pass_valid"), "registering")
    paused = api.wait(s["id"], {"awaiting_token"})
    assert paused["challenge"]["expects_user_input"] is False
    assert api.submit(s["id"], None).status_code == 202
    assert api.wait(s["id"])["status"] == "succeeded"
    resume = _calls(sandbox, kind="resume")[-1]
    assert resume["has_token"] is False


@pytest.mark.parametrize(("username", "password"), [("user_invalid", "pass_valid"), ("ana", "pass_invalid")])
def test_register_with_credentials_the_bank_refuses_fails_with_belvos_login_error(
    api, sandbox, username, password
):
    s = _started(_register(api, username=username, password=password), "registering")
    done = api.wait(s["id"])
    assert done["status"] == "failed" and done["outcome"]["code"] == "login_error"
    assert done["outcome"]["http_status"] == 400 and done["link"] is None


def test_register_retries_a_5xx(api, sandbox):
    sandbox.fault("status", status=503, match="register")
    s = _started(_register(api, username="user_valid", password="pass_valid"), "registering")
    assert api.wait(s["id"])["status"] == "succeeded"
    assert len(_calls(sandbox, kind="register")) == 2


@pytest.mark.parametrize(
    ("resource", "fields", "path", "shape"),
    [
        ("accounts", {}, "/api/accounts/", list),
        ("transactions", {"date_from": "2026-01-01", "date_to": "2026-01-31"}, "/api/transactions/", list),
        ("owners", {"save_data": False}, "/api/owners/", list),
        ("incomes", {}, "/api/incomes/", dict),  # the spec's POST answers one object
        ("employment-records", {"attach_pdf": False}, "/api/employment-records/", list),
        ("investments/portfolios", {}, "/investments/portfolios/", dict),
    ],
)
def test_retrieval_without_mfa_returns_the_data(api, sandbox, resource, fields, path, shape):
    link = _registered_link(api)
    body = {"resource": resource, "link": link, **fields}
    s = _started(api.request("POST", "/v1/retrievals", json=body), "retrieving")
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and isinstance(done["outcome"]["result"], shape)
    call = [c for c in _calls(sandbox, kind="retrieve")][-1]
    assert call["path"] == path and call["link"] == link
    assert set(call["body_keys"]) == {"link", *fields}


@pytest.mark.parametrize("resource", ["accounts", "incomes", "investments/portfolios", "employment-records"])
def test_retrieval_that_pauses_resumes_the_same_resource(api, sandbox, resource):
    link = _registered_link(api, mfa=True)
    body = {"resource": resource, "link": link, "save_data": False}
    s = _started(api.request("POST", "/v1/retrievals", json=body), "retrieving")
    paused = api.wait(s["id"], {"awaiting_token"})
    assert paused["resource"] == resource and paused["step"] == 1
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    done = api.wait(s["id"])
    # Resumed, incomes answer a list (the spec's PATCH) and portfolios one object.
    expected = dict if resource == "investments/portfolios" else list
    assert done["status"] == "succeeded" and isinstance(done["outcome"]["result"], expected)
    resume = _calls(sandbox, kind="resume")[-1]
    assert resume["path"].rstrip("/").endswith(resource)
    assert resume["save_data"] is (None if resource == "investments/portfolios" else False)


def _registered_link(api, mfa: bool = False) -> str:
    """A link registered through the service (through its MFA step when `mfa`)."""
    creds = (
        {"username": "mfa_numeric", "password": "numeric_code"}
        if mfa
        else {"username": "user_valid", "password": "pass_valid"}
    )
    s = _started(_register(api, **creds), "registering")
    if mfa:
        api.wait(s["id"], {"awaiting_token"})
        api.submit(s["id"], "111111")
    done = api.wait(s["id"])
    assert done["status"] == "succeeded"
    return done["outcome"]["result"]["id"]


def test_links_are_refused_while_no_sealing_key_is_configured(redis_server):
    app = create_app(
        {
            "REDIS_URL": redis_server.url,
            "API_KEYS": API_KEY,
            "SEALING_PUBLIC_KEY": "",
            "LINKS_ENABLED": "auto",
        }
    )
    body = {"institution": "heimdall_mx_retail", "username": "user_valid", "password": "pass_valid"}
    r = app.test_client().post("/v1/links", json=body, headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 404 and r.json["code"] == "links_disabled"
