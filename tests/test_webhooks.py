"""Webhooks end to end, in-process: the service's own events to a real HTTP receiver on loopback.

Every payload is verified with the standardwebhooks library, as a backend would. The receiver and the
service run in this process; the worker's jobs and deliveries run when a test waits (tests/inprocess.py).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis import Redis
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from devstack.processes import wait_for
from mfa.keys import OUTBOX_STREAM, WEBHOOK_PREFIX
from mfa.settings import Settings
from tests.inprocess import InProcessApi, JobRunner
from tests.receiver import HANG, Receiver, receiving
from tests.support import Sandbox

SECRET = "whsec_" + base64.b64encode(b"n" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"x" * 32).decode()
SCHEDULE = "0.05,0.05,0.05"  # three retries, quickly
# A loopback receiver over plain HTTP: both allowances on, except where a test is about them.
WEBHOOK_ENV = {
    "WEBHOOK_SECRETS": SECRET,
    "WEBHOOK_ALLOW_HTTP": "1",
    "WEBHOOK_ALLOW_PRIVATE": "1",
    "WEBHOOK_RETRY_SCHEDULE": SCHEDULE,
    "WEBHOOK_TIMEOUT_SECONDS": "0.5",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@pytest.fixture
def hooked(make_api: Callable[..., InProcessApi], receiver: Receiver, sandbox: Sandbox) -> InProcessApi:
    """The service with WEBHOOK_URL at the receiver's /hook."""
    return make_api(**WEBHOOK_ENV, WEBHOOK_URL=f"{receiver.url}/hook")


def pump(api: InProcessApi, done: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
    """Run the worker's jobs, sweeps and deliveries until `done()` holds."""

    def step() -> Any:
        api.tick()
        return done()

    return wait_for(step, timeout, what or "the deliveries")


def delivered(api: InProcessApi, receiver: Receiver, path: str, count: int) -> list[Any]:
    """Pump until `path` has answered `count` requests; returns them."""
    pump(api, lambda: len([r for r in receiver.on(path) if r.answered is not None]) >= count)
    return [r for r in receiver.on(path) if r.answered is not None]


def verified(request: Any, secret: str = SECRET) -> dict[str, Any]:
    """The payload, verified as a backend verifies it: the standardwebhooks library, its headers."""
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["id"] == request.headers["webhook-id"]
    return payload


def events(api: InProcessApi, session_id: str) -> list[dict[str, Any]]:
    r = api.request("GET", f"/v1/sessions/{session_id}/events")
    assert r.status_code == 200, r.text
    return r.json()["data"]


# --- what is sent ---------------------------------------------------------------------------------


def test_each_step_and_the_end_are_signed_events_that_verify(hooked, receiver, sandbox):
    s = hooked.created(sandbox.pause())
    assert hooked.submit(s["id"], "999999").status_code == 202  # Belvo asks for another step
    hooked.wait(s["id"], {"awaiting_token"}, step=2)
    assert hooked.submit(s["id"], "111111").status_code == 202
    final = hooked.wait(s["id"])
    got = [verified(r) for r in delivered(hooked, receiver, "/hook", 3)]
    got.sort(key=lambda p: p["sequence"])
    assert [(p["type"], p["step"]) for p in got] == [
        ("session.awaiting_token", 1),
        ("session.awaiting_token", 2),
        ("session.succeeded", 2),
    ]
    assert len({p["id"] for p in got}) == 3 and got[0]["sequence"] == 1
    assert all(p["data"]["id"] == s["id"] and p["data"]["challenge"] for p in got[:2])
    # The session as the API key sees it, but for Belvo's result: sealed for the web alone, it is read
    # with GET /v1/sessions/{id}, never sent in a webhook.
    assert final["outcome"]["result"]["id"] == final["link"]
    assert got[2]["data"] == {**final, "outcome": {**final["outcome"], "result": None}}
    assert [e["status"] for e in events(hooked, s["id"])] == ["delivered"] * 3


@pytest.mark.parametrize("ending", ["cancelled", "expired", "failed"])
def test_every_other_end_is_an_event(hooked, receiver, sandbox, ending):
    s = hooked.created(sandbox.pause(expiry=0.3 if ending == "expired" else 60))
    if ending == "cancelled":
        assert hooked.cancel(s["id"]).status_code == 200
    if ending == "failed":
        sandbox.fault("status", status=400)
        assert hooked.submit(s["id"]).status_code == 202
    if ending == "expired":
        time.sleep(0.3)  # the stimulus: Belvo's session runs out
    hooked.wait(s["id"])
    last = verified(delivered(hooked, receiver, "/hook", 2)[-1])
    assert last["type"] == f"session.{ending}" and last["data"]["status"] == ending


def test_a_session_without_destinations_writes_no_event(make_api, sandbox, redis: Redis):
    api = make_api(WEBHOOK_SECRETS=SECRET)  # signing is set up, but nothing says where to send
    s = api.created(sandbox.pause())
    api.submit(s["id"])
    api.wait(s["id"])
    assert redis.xlen(OUTBOX_STREAM) == 0  # (the deliverers' group keeps an empty stream)
    assert not list(redis.scan_iter(WEBHOOK_PREFIX + "*"))
    assert events(api, s["id"]) == []


def test_a_callback_url_gets_the_events_beside_webhook_url_each_delivered_on_its_own(
    hooked, receiver, sandbox
):
    receiver.plan("/own", 400)
    s = hooked.created(sandbox.pause(), callback_url=f"{receiver.url}/own")
    own, shared = delivered(hooked, receiver, "/own", 1), delivered(hooked, receiver, "/hook", 1)
    assert own[0].headers["webhook-id"] == shared[0].headers["webhook-id"] and own[0].body == shared[0].body
    [event] = events(hooked, s["id"])
    assert event["status"] == "failed"  # failed at one destination
    assert [(d["url"].rsplit("/", 1)[1], d["status"]) for d in event["deliveries"]] == [
        ("hook", "delivered"),
        ("own", "failed"),
    ]
    r = hooked.request("POST", f"/v1/events/{event['id']}/redeliver")
    assert r.status_code == 202
    delivered(hooked, receiver, "/own", 2)
    assert len(receiver.on("/hook")) == 1  # the delivered destination is not sent to again
    assert events(hooked, s["id"])[0]["status"] == "delivered"


# --- retries --------------------------------------------------------------------------------------


def test_a_500_then_a_200_is_two_attempts_with_the_same_webhook_id(hooked, receiver, sandbox):
    receiver.plan("/hook", 500)
    s = hooked.created(sandbox.pause())
    first, second = delivered(hooked, receiver, "/hook", 2)
    assert (first.answered, second.answered) == (500, 200)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] and first.body == second.body
    verified(second)
    [event] = events(hooked, s["id"])
    attempts = event["deliveries"][0]["attempts"]
    assert [a["http_status"] for a in attempts] == [500, 200] and event["status"] == "delivered"
    assert all(a["duration_ms"] >= 0 and a["at"] for a in attempts)


def test_a_400_is_not_retried_stays_readable_as_failed_and_can_be_redelivered(hooked, receiver, sandbox):
    receiver.plan("/hook", 400)
    s = hooked.created(sandbox.pause())
    [refused] = delivered(hooked, receiver, "/hook", 1)
    for _ in range(10):  # well past the whole retry schedule
        hooked.tick()
        time.sleep(0.05)
    assert len(receiver.on("/hook")) == 1
    failed = hooked.request("GET", "/v1/events", params={"status": "failed"}).json()
    assert [e["session_id"] for e in failed["data"]] == [s["id"]]
    event = failed["data"][0]
    assert event["deliveries"][0]["attempts"][0]["http_status"] == 400
    assert hooked.request("POST", f"/v1/events/{event['id']}/redeliver").status_code == 202
    assert hooked.request("POST", f"/v1/events/{event['id']}/redeliver").status_code == 409  # on its way
    again = delivered(hooked, receiver, "/hook", 2)[1]
    assert again.headers["webhook-id"] == refused.headers["webhook-id"] == event["id"]
    verified(again)
    assert hooked.request("GET", "/v1/events", params={"status": "failed"}).json()["data"] == []
    [now] = hooked.request("GET", "/v1/events", params={"status": "delivered"}).json()["data"]
    assert [a["http_status"] for a in now["deliveries"][0]["attempts"]] == [400, 200]
    assert hooked.request("POST", "/v1/events/evt_nothing_1/redeliver").status_code == 404


def test_retry_after_of_a_429_is_honoured(hooked, receiver, sandbox):
    receiver.plan("/hook", (429, {"Retry-After": "1"}))
    hooked.created(sandbox.pause())
    first, second = delivered(hooked, receiver, "/hook", 2)
    assert second.at - first.at >= 1.0  # the schedule alone would have waited 0.05 s
    assert second.headers["webhook-id"] == first.headers["webhook-id"]


def test_a_receiver_that_hangs_past_the_timeout_is_retried(hooked, receiver, sandbox):
    receiver.plan("/hook", HANG)
    s = hooked.created(sandbox.pause())
    [answered] = delivered(hooked, receiver, "/hook", 1)  # the held request is never answered
    held = receiver.on("/hook")[0]
    assert held.answered is None and answered.headers["webhook-id"] == held.headers["webhook-id"]
    attempts = events(hooked, s["id"])[0]["deliveries"][0]["attempts"]
    assert [(a["http_status"], a["error"]) for a in attempts] == [(None, "timeout"), (200, None)]


def test_a_destination_failing_through_the_whole_schedule_ends_failed(hooked, receiver, sandbox):
    receiver.plan("/hook", 503, 500, 502, 500, 200)
    s = hooked.created(sandbox.pause())
    delivered(hooked, receiver, "/hook", 4)
    pump(hooked, lambda: events(hooked, s["id"])[0]["status"] == "failed")
    for _ in range(5):
        hooked.tick()
        time.sleep(0.05)
    assert len(receiver.on("/hook")) == 4  # 1 + len(WEBHOOK_RETRY_SCHEDULE); the planned 200 never asked


# --- signing ----------------------------------------------------------------------------------------


def test_during_a_rotation_receivers_with_only_the_new_or_only_the_old_secret_both_verify(
    make_api, receiver, sandbox
):
    env = {**WEBHOOK_ENV, "WEBHOOK_SECRETS": f"{SECRET},{OLD_SECRET}", "WEBHOOK_URL": f"{receiver.url}/hook"}
    api = make_api(**env)
    api.created(sandbox.pause())
    [request] = delivered(api, receiver, "/hook", 1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2  # one v1,<b64> per active secret
    assert verified(request, SECRET) == verified(request, OLD_SECRET)
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(request.body, request.headers)


def test_a_tampered_body_does_not_verify(hooked, receiver, sandbox):
    hooked.created(sandbox.pause())
    [request] = delivered(hooked, receiver, "/hook", 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(request.body.replace(b"awaiting", b"succeeded"), request.headers)


# --- no SSRF --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://localhost:9/hook",  # a name that resolves to loopback
        "http://10.0.0.7/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://100.100.100.200/",
        "http://0.0.0.0:9/",
    ],
)
def test_a_callback_url_to_a_private_address_is_refused_at_creation(make_api, sandbox, url):
    api = make_api(WEBHOOK_ALLOW_HTTP="1")
    r = api.create(sandbox.pause(), callback_url=url)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["callback_url"]


@pytest.mark.parametrize(
    "url", ["http://93.184.216.34/hook", "https://user:pw@93.184.216.34/", "ftp://93.184.216.34/", "hook"]
)
def test_a_callback_url_must_be_https_without_credentials(make_api, sandbox, url):
    r = make_api().create(sandbox.pause(), callback_url=url)
    assert r.status_code == 422, r.text


def test_a_public_https_callback_url_is_accepted(make_api, sandbox):
    assert make_api().create(sandbox.pause(), callback_url="https://93.184.216.34/hook").status_code == 201


def test_delivery_refuses_a_private_address_after_resolution_even_if_creation_allowed_it(
    make_api, receiver, sandbox, service_env, redis_server
):
    port = receiver.url.rsplit(":", 1)[1]
    env = {**WEBHOOK_ENV, "WEBHOOK_URL": f"http://localhost:{port}/hook"}
    api = make_api(**env)  # the web allows private addresses; the worker below does not
    worker_env = {
        **service_env,
        **env,
        "WEBHOOK_ALLOW_PRIVATE": "0",
        "REDIS_URL": redis_server.extra["urls"]["worker"],
    }
    api.jobs = JobRunner(Settings.from_env(worker_env))
    s = api.created(sandbox.pause())
    pump(api, lambda: events(api, s["id"])[0]["status"] == "failed")
    [attempt] = events(api, s["id"])[0]["deliveries"][0]["attempts"]
    assert attempt["http_status"] is None
    assert attempt["error"].startswith("destination refused") and "loopback" in attempt["error"]
    assert receiver.on("/hook") == []  # not a byte reached it


# --- reading --------------------------------------------------------------------------------------


def test_a_session_s_events_are_for_api_keys_only(hooked, sandbox):
    s = hooked.created(sandbox.pause())
    assert hooked.request("GET", f"/v1/sessions/{s['id']}/events", s["client_secret"]).status_code == 401
    assert hooked.request("GET", "/v1/sessions/mfa_nothing/events").status_code == 404
    assert (
        hooked.request("GET", "/v1/events", params={"status": "failed"}, credential=None).status_code == 401
    )
    assert hooked.request("GET", "/v1/events", params={"status": "lost"}).status_code == 422
