"""Issue 4's flows end to end: the service registers links and retrieves data, pausing for MFA."""

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
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and done["external_ref"] == "ref-1"
    link = done["outcome"]["result"]
    assert done["outcome"]["http_status"] == 201 and link["status"] == "valid"
    [call] = _calls(sandbox, kind="register")
    assert call["method"] == "POST" and call["path"] == "/api/links/"


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


def test_register_with_device_approval_resumes_without_token(api, sandbox):
    s = _started(_register(api, username="mfa_default", password="pass_valid"), "registering")
    paused = api.wait(s["id"], {"awaiting_token"})
    assert paused["challenge"]["expects_user_input"] is False
    assert api.submit(s["id"], None).status_code == 202
    assert api.wait(s["id"])["status"] == "succeeded"
    resume = _calls(sandbox, kind="resume")[-1]
    assert resume["has_token"] is False


def test_register_rejected_credentials_fail(api, sandbox):
    s = _started(_register(api, username="user_valid", password="wrong"), "registering")
    done = api.wait(s["id"])
    assert done["status"] == "failed" and done["outcome"]["code"] == "invalid_credentials"
    assert done["outcome"]["http_status"] == 400


def test_register_retries_a_5xx(api, sandbox):
    sandbox.fault("status", status=503, match="register")
    s = _started(_register(api, username="user_valid", password="pass_valid"), "registering")
    assert api.wait(s["id"])["status"] == "succeeded"
    assert len(_calls(sandbox, kind="register")) == 2


def test_register_validation(api):
    r = api.request("POST", "/v1/links", json={"institution": "heimdall_mx_retail", "username": "u"})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["password"]
    body = {"institution": "Bad Name", "username": "u", "password": "S3cret-pw-zz", "bad": 1}
    r = api.request("POST", "/v1/links", json=body)
    assert r.status_code == 422 and {e["field"] for e in r.json()["errors"]} == {"institution", "bad"}
    assert "S3cret-pw-zz" not in r.text
    assert api.request("POST", "/v1/links", credential=None, json={}).status_code == 401


@pytest.mark.parametrize("resource", ["accounts", "transactions", "owners"])
def test_retrieval_without_mfa_returns_the_data(api, sandbox, resource):
    link = _registered_link(api)
    body = {"resource": resource, "link": link, "date_from": "2026-01-01", "date_to": "2026-01-31"}
    s = _started(api.request("POST", "/v1/retrievals", json=body), "retrieving")
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and isinstance(done["outcome"]["result"], list)
    call = [c for c in _calls(sandbox, kind="retrieve")][-1]
    assert call["path"] == f"/api/{resource}/" and call["link"] == link


def test_retrieval_that_pauses_resumes_the_same_resource(api, sandbox):
    link = _registered_link(api, mfa=True)
    body = {"resource": "accounts", "link": link, "save_data": False}
    s = _started(api.request("POST", "/v1/retrievals", json=body), "retrieving")
    paused = api.wait(s["id"], {"awaiting_token"})
    assert paused["resource"] == "accounts" and paused["step"] == 1
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and isinstance(done["outcome"]["result"], list)
    resume = _calls(sandbox, kind="resume")[-1]
    assert resume["path"] == "/api/accounts/" and resume["save_data"] is False


def test_retrieval_validation(api):
    bad = {"resource": "links", "link": "not-a-uuid", "date_from": "2026-02-01", "date_to": "2026-01-01"}
    r = api.request("POST", "/v1/retrievals", json=bad)
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"resource", "link", "date_to"}


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
