"""A link is registered once at Belvo: after an attempt Belvo may have acted on (its answer lost, a 408
or a 5xx), the service finds the link that attempt made, by the external_id it set, and adopts it
instead of posting the registration again (mfa/registration.py). Each case against the sandbox, whose
`process: true` faults make the link and then lose or spoil the answer."""

from __future__ import annotations

import requests

from tests.support import BELVO_SECRET_ID, BELVO_SECRET_PASSWORD


def _register(api, institution: str = "erebor_mx_retail", **fields) -> dict:
    body = {"institution": institution, "username": "ana", "password": "pw-1", **fields}
    r = api.request("POST", "/v1/links", json=body)
    assert r.status_code == 202, r.text
    return r.json()


def test_a_lost_answer_adopts_the_link_the_registration_made(api, sandbox):
    sandbox.fault("drop", match="register", process=True)  # Belvo registers the link; its answer is lost
    s = _register(api)
    done = api.wait(s["id"])
    assert done["status"] == "succeeded", done
    link = done["outcome"]["result"]
    assert (link["status"], link["external_id"], done["link"]) == ("valid", s["id"], link["id"])
    assert len(sandbox.calls(kind="register")) == 1, "the registration was not posted twice"
    [lookup] = sandbox.calls(kind="list")
    assert lookup["query"] == {"external_id": s["id"], "institution": "erebor_mx_retail", "page_size": "100"}
    assert [found["id"] for found in sandbox_links(sandbox)] == [link["id"]]


def test_a_link_whose_428_was_lost_is_finished_through_the_update_call_and_its_mfa_step(api, sandbox):
    sandbox.fault("status", status=500, match="register", process=True)  # the link waits for a token
    s = _register(api, "heimdall_mx_retail", username="mfa_numeric", password="numeric_code")
    paused = api.wait(s["id"], {"awaiting_token"})
    assert paused["step"] == 1 and paused["challenge"]["type"] == "numeric" and paused["link"]
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and done["outcome"]["result"]["id"] == paused["link"]
    kinds = [c["kind"] for c in sandbox.calls() if c["kind"] != "other"]
    assert kinds == ["register", "list", "update", "resume"]
    [update] = sandbox.calls(kind="update")
    assert update["path"] == f"/api/links/{paused['link']}/" and update["body_keys"] == ["password"]


def test_an_attempt_belvo_never_saw_is_registered_again_after_the_look_up(api, sandbox):
    sandbox.fault("drop", match="register")  # dropped before Belvo: no link was made
    s = _register(api)
    done = api.wait(s["id"])
    assert done["status"] == "succeeded"
    assert [c["kind"] for c in sandbox.calls() if c["kind"] != "other"] == ["register", "list", "register"]
    assert len(sandbox_links(sandbox)) == 1


def test_a_link_the_look_up_missed_is_adopted_when_belvo_refuses_its_duplicate(api, sandbox):
    sandbox.fault("drop", match="register", process=True)  # the link is made; the answer is lost
    empty = '{"count": 0, "next": null, "previous": null, "results": []}'
    sandbox.fault("bad_shape", match="list", body=empty)  # as if the link were not listed yet
    s = _register(api)
    done = api.wait(s["id"])
    assert done["status"] == "succeeded", done
    assert done["outcome"]["result"]["external_id"] == s["id"]
    kinds = [c["kind"] for c in sandbox.calls() if c["kind"] != "other"]
    assert kinds == ["register", "list", "register", "list"]
    assert sandbox.calls(kind="register")[1]["status"] == 400  # Belvo refused the duplicate
    assert len(sandbox_links(sandbox)) == 1


def test_a_throttled_attempt_is_not_uncertain_and_is_simply_posted_again(api, sandbox):
    sandbox.fault("status", status=429, match="register", retry_after=0)
    s = _register(api)
    assert api.wait(s["id"])["status"] == "succeeded"
    assert [c["kind"] for c in sandbox.calls() if c["kind"] != "other"] == ["register", "register"]


def test_a_failing_look_up_is_retried_and_never_becomes_a_second_registration(api, sandbox):
    sandbox.fault("status", status=502, match="register", process=True)
    sandbox.fault("status", status=500, match="list")
    s = _register(api)
    done = api.wait(s["id"])
    assert done["status"] == "succeeded"
    assert [c["kind"] for c in sandbox.calls() if c["kind"] != "other"] == ["register", "list", "list"]


def test_links_that_cannot_be_told_apart_end_as_an_unknown_outcome_listing_them(api, sandbox):
    first = api.wait(_register(api, external_id="user-42")["id"])  # the caller's own id, reused
    assert first["status"] == "succeeded"
    sandbox.fault("drop", match="register", process=True)
    s = _register(api, username="bea", external_id="user-42")
    done = api.wait(s["id"])
    assert (done["status"], done["outcome"]["code"]) == ("failed", "upstream_outcome_unknown")
    assert {link["external_id"] for link in done["outcome"]["result"]} == {"user-42"}
    assert len(done["outcome"]["result"]) == 2
    assert len(sandbox.calls(kind="register")) == 2, "no third registration"


def sandbox_links(sandbox) -> list[dict]:
    """Every link the sandbox holds (its links list, as Belvo's API answers it)."""
    r = requests.get(f"{sandbox.url}/api/links/", auth=(BELVO_SECRET_ID, BELVO_SECRET_PASSWORD), timeout=5)
    return r.json()["results"]
