"""Recurrent links re-authenticated through the service: Belvo's LINK webhook comes in (recorded once,
visible to the backend), the backend sends the credentials again (POST /v1/links/{id}/update, Belvo's
PUT /api/links/{id}/), and a 428 becomes a session the frontend completes, as a registration's would."""

from __future__ import annotations

import base64
import uuid

import pytest
from standardwebhooks.webhooks import Webhook

from tests.inprocess import served
from tests.receiver import receiving
from tests.support import BELVO_WEBHOOK_AUTHORIZATION, redis_values

WEBHOOK = {
    "webhook_id": "wh-0001",
    "webhook_type": "LINK",
    "webhook_code": "token_required",
    "link_id": "8848bd0c-9c7e-4f53-a732-ec896b11d4c4",
    "request_id": "c" * 32,
    "external_id": "user-42",
    "process_type": "recurrent_update",
    "data": {"error_code": "token_required", "error_message": "A MFA token is required"},
}


def _registered(
    api,
    username: str = "mfa_numeric",
    password: str = "numeric_code",
    institution: str = "heimdall_mx_retail",
) -> str:
    body = {"institution": institution, "username": username, "password": password}
    s = api.request("POST", "/v1/links", json=body).json()
    if api.wait(s["id"], {"awaiting_token", "succeeded"})["status"] == "awaiting_token":
        assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    done = api.wait(s["id"])
    assert done["status"] == "succeeded"
    return done["link"]


def _deliver(api, body: dict, authorization: str | None = BELVO_WEBHOOK_AUTHORIZATION):
    headers = {"Authorization": authorization} if authorization is not None else {}
    return api.request("POST", "/v1/belvo/webhooks", credential=None, headers=headers, json=body)


def _events(api, link: str) -> list[dict]:
    r = api.request("GET", f"/v1/links/{link}/events")
    assert r.status_code == 200, r.text
    assert r.json()["link"] == link
    return r.json()["events"]


def test_belvos_webhook_then_the_update_call_then_the_users_token(api, sandbox, redis):
    link = _registered(api)
    with served(api.app) as url:
        sent = sandbox.webhook(f"{url}/v1/belvo/webhooks", link, authorization=BELVO_WEBHOOK_AUTHORIZATION)
    assert sent["status"] == 200, sent
    [event] = _events(api, link)
    webhook = sent["webhook"]
    assert (event["webhook_id"], event["webhook_code"], event["link_id"]) == (
        webhook["webhook_id"],
        "token_required",
        link,
    )
    assert event["process_type"] == "recurrent_update" and event["data"]["error_code"] == "token_required"
    assert event["received_at"].endswith("Z") and event["id"]

    r = api.request(
        "POST", f"/v1/links/{link}/update", json={"password": "numeric_code", "external_ref": "re-1"}
    )
    assert r.status_code == 202, r.text
    s = r.json()
    assert (s["status"], s["link"], s["resource"], s["expires_at"]) == ("updating", link, "links", None)
    assert r.headers["Location"] == f"/v1/sessions/{s['id']}"
    assert not [v for v in redis_values(redis) if b"numeric_code" in v], "the password is sealed in Redis"
    paused = api.wait(s["id"], {"awaiting_token"})
    assert (paused["step"], paused["link"], paused["challenge"]["type"]) == (1, link, "numeric")
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and done["outcome"]["result"]["status"] == "valid"
    [update] = sandbox.calls(kind="update")
    assert (update["path"], update["body_keys"]) == (f"/api/links/{link}/", ["password"])
    assert sandbox.calls(kind="resume")[-1]["path"] == "/api/links/"


def test_a_webhook_belvo_delivers_twice_is_recorded_once(api, sandbox):
    link = _registered(api, "ana", "pw-1", "erebor_mx_retail")
    with served(api.app) as url:
        spec = {
            "authorization": BELVO_WEBHOOK_AUTHORIZATION,
            "webhook_id": "wh-7",
            "webhook_code": "invalid_credentials",
        }
        first = sandbox.webhook(f"{url}/v1/belvo/webhooks", link, **spec)
        again = sandbox.webhook(f"{url}/v1/belvo/webhooks", link, **spec)
    assert (first["status"], again["status"]) == (200, 200)
    [event] = _events(api, link)
    assert (event["webhook_id"], event["webhook_code"]) == ("wh-7", "invalid_credentials")
    r = _deliver(api, {**WEBHOOK, "webhook_id": "wh-7", "link_id": link})
    assert r.json() == {"webhook_id": "wh-7", "recorded": True, "duplicate": True, "event": event["id"]}


def test_updating_a_link_without_mfa_and_with_a_password_the_bank_refuses(api, sandbox):
    link = _registered(api, "ana", "pw-1", "erebor_mx_retail")
    s = api.request("POST", f"/v1/links/{link}/update", json={"password": "pw-2"}).json()
    done = api.wait(s["id"])
    assert (done["status"], done["outcome"]["http_status"], done["link"]) == ("succeeded", 200, link)
    s = api.request("POST", f"/v1/links/{link}/update", json={"password": "pass_invalid"}).json()
    done = api.wait(s["id"])
    assert (done["status"], done["outcome"]["code"]) == ("failed", "login_error")
    s = api.request("POST", f"/v1/links/{uuid.uuid4()}/update", json={"password": "pw"}).json()
    done = api.wait(s["id"])
    assert (done["status"], done["outcome"]["http_status"], done["outcome"]["code"]) == (
        "failed",
        404,
        "not_found",
    )


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        (BELVO_WEBHOOK_AUTHORIZATION + " ", 401),
        (BELVO_WEBHOOK_AUTHORIZATION, 200),
    ],
)
def test_the_intake_takes_only_the_configured_authorization(api, authorization, status):
    assert _deliver(api, WEBHOOK, authorization).status_code == status


def test_the_intake_is_off_until_configured(make_api, sandbox):
    off = make_api(BELVO_WEBHOOK_AUTHORIZATION="")
    r = _deliver(off, WEBHOOK, "")
    assert (r.status_code, r.json()["code"]) == (404, "not_found")


def test_the_intake_records_a_link_event_once_and_takes_fields_belvo_may_add(api):
    r = _deliver(api, {**WEBHOOK, "new_field": {"any": "thing"}})
    assert r.status_code == 200 and r.json()["recorded"] and not r.json()["duplicate"]
    [event] = _events(api, WEBHOOK["link_id"])
    assert event["external_id"] == "user-42" and "new_field" not in event
    assert _deliver(api, WEBHOOK).json()["duplicate"] is True
    assert len(_events(api, WEBHOOK["link_id"])) == 1
    unlinked = _deliver(api, {k: v for k, v in WEBHOOK.items() if k != "link_id"} | {"webhook_id": "wh-2"})
    assert unlinked.json() == {"webhook_id": "wh-2", "recorded": False, "duplicate": False, "event": None}


@pytest.mark.parametrize(
    "change",
    [{"webhook_id": None}, {"webhook_code": ""}, {"link_id": "not-a-uuid"}, {"webhook_id": "x" * 201}],
)
def test_the_intake_refuses_a_body_that_is_not_belvos(api, change):
    body = {k: v for k, v in {**WEBHOOK, **change}.items() if v is not None}
    assert _deliver(api, body).status_code == 422


def test_link_events_are_for_the_backend(api, sandbox):
    link = WEBHOOK["link_id"]
    assert _events(api, link) == []
    assert api.request("GET", f"/v1/links/{link}/events", credential=None).status_code == 401
    frontend = api.created(sandbox.pause())["client_secret"]
    assert api.request("GET", f"/v1/links/{link}/events", credential=frontend).status_code == 401
    r = api.request("GET", "/v1/links/not-a-link/events")
    assert (r.status_code, r.json()["code"]) == (404, "link_not_found")


def test_each_belvo_webhook_becomes_one_link_event_webhook_for_the_backend(make_api, sandbox):
    """With WEBHOOK_URL set, the backend is told by our own signed webhook (`link.<webhook_code>`),
    written in the transaction that records Belvo's: once, however often Belvo delivers it."""
    secret = "whsec_" + base64.b64encode(b"l" * 32).decode()
    with receiving() as receiver:
        api = make_api(
            WEBHOOK_URL=f"{receiver.url}/hook",
            WEBHOOK_SECRETS=secret,
            WEBHOOK_ALLOW_HTTP="1",
            WEBHOOK_ALLOW_PRIVATE="1",
        )
        for _ in range(2):  # Belvo delivers it twice
            assert _deliver(api, WEBHOOK).status_code == 200
        api.tick()  # the worker's deliverers
        [got] = receiver.wait("/hook", 1)
        api.tick()
        assert len(receiver.on("/hook")) == 1, "one event for one Belvo webhook"
    payload = Webhook(secret).verify(got.body, got.headers)
    assert payload["type"] == "link.token_required" and payload["id"].startswith("evt_link_")
    data = payload["data"]
    assert (data["webhook_id"], data["link_id"], data["external_id"]) == (
        "wh-0001",
        WEBHOOK["link_id"],
        "user-42",
    )
    assert data["data"] == WEBHOOK["data"] and data["received_at"].endswith("Z")
