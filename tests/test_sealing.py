"""Sealing at rest (mfa/sealing.py): what the web stores only the worker opens, what the worker stores
for the web only the web opens, keys rotate, and Belvo's result is kept sealed, capped and apart from
the record. Unit tests of the envelope, then flows through the in-process service and real Redis."""

from __future__ import annotations

import json

import pytest

from mfa.keys import creds_key, events_key, result_key, session_key, token_key
from mfa.sealing import AtRest, Opener, Sealer, Unsealable, is_sealed, new_key_pair, public_key_of
from tests.support import (
    RESULT_PRIVATE_KEY,
    SEALING_PRIVATE_KEY,
    SEALING_PUBLIC_KEY,
    first,
    redis_values,
)

OWNER_EMAIL = b"valeria.gomez@example.com"  # in the sandbox's owners result: bank data of a person


# --- the envelope ----------------------------------------------------------------------------------


def test_a_sealed_value_opens_only_with_the_private_half():
    private, public = new_key_pair()
    sealed = Sealer.from_text(public).seal(b"111111")
    assert is_sealed(sealed) and b"111111" not in sealed
    assert Opener.from_text(private).open(sealed) == b"111111"
    other_private, _ = new_key_pair()
    with pytest.raises(Unsealable, match="not configured"):
        Opener.from_text(other_private).open(sealed)
    # Sealing twice gives two different envelopes: a stored value says nothing about another.
    assert Sealer.from_text(public).seal(b"111111") != sealed


def test_an_altered_envelope_does_not_open():
    private, public = new_key_pair()
    sealed = bytearray(Sealer.from_text(public).seal(b'{"password": "x"}'))
    sealed[-1] ^= 1
    with pytest.raises(Unsealable, match="altered"):
        Opener.from_text(private).open(bytes(sealed))


def test_rotation_several_private_keys_open_one_public_key_seals():
    old_private, old_public = new_key_pair()
    new_private, new_public = new_key_pair()
    before = Sealer.from_text(old_public).seal(b"sealed before the rotation")
    after = Sealer.from_text(new_public).seal(b"sealed after it")
    during = Opener.from_text(f"{new_private},{old_private}")
    assert during.open(before) == b"sealed before the rotation"
    assert during.open(after) == b"sealed after it"
    with pytest.raises(Unsealable):  # once the old key is dropped, what it sealed is gone for good
        Opener.from_text(new_private).open(before)


def test_a_sealer_holds_no_key_that_opens_and_no_repr_shows_a_private_key():
    private, public = new_key_pair()
    sealer, opener = Sealer.from_text(public), Opener.from_text(private)
    assert public_key_of(private) == public
    assert private.removeprefix("mfa-sk-") not in repr(opener) + repr(sealer)
    assert [name for name in vars(sealer) if "private" in name.lower()] == []


def test_values_stored_without_keys_still_read():
    """A plaintext token or JSON never starts with the envelope's version byte."""
    private, public = new_key_pair()
    web, worker = AtRest(sealer=Sealer.from_text(public)), AtRest(opener=Opener.from_text(private))
    assert worker.read(web.store(b"111111")) == b"111111"
    assert worker.read(b"111111") == b"111111" and worker.read(b'{"id": 1}') == b'{"id": 1}'
    with pytest.raises(Unsealable, match="no private key"):
        AtRest().read(web.store(b"111111"))


# --- through the service ---------------------------------------------------------------------------


def test_the_token_is_sealed_in_redis_and_only_the_workers_key_opens_it(api, sandbox, redis):
    pause = sandbox.pause()
    s = api.created(pause)
    assert api.submit(s["id"], "738201", credential=s["client_secret"]).status_code == 202
    stored = redis.get(token_key(s["id"]))
    assert is_sealed(stored) and b"738201" not in stored
    assert Opener.from_text(SEALING_PRIVATE_KEY).open(stored) == b"738201"
    with pytest.raises(Unsealable):  # the web's own private key (results) does not open it
        Opener.from_text(RESULT_PRIVATE_KEY).open(stored)
    api.wait(s["id"])
    [call] = sandbox.calls(method="PATCH", session=first(pause)["session"])
    assert call["token"] == "738201"  # the worker opened it and sent it


def test_bank_credentials_are_sealed_to_the_workers_key(api, sandbox, redis):
    body = {"institution": "heimdall_mx_retail", "username": "mfa_numeric", "password": "numeric_code"}
    r = api.request("POST", "/v1/links", json=body)
    assert r.status_code == 202, r.text
    stored = redis.get(creds_key(r.json()["id"]))
    assert is_sealed(stored) and b"numeric_code" not in stored
    assert json.loads(Opener.from_text(SEALING_PRIVATE_KEY).open(stored))["password"] == "numeric_code"
    assert api.wait(r.json()["id"], {"awaiting_token"})["status"] == "awaiting_token"


def test_belvos_result_is_sealed_apart_from_the_record_and_shown_to_api_keys_only(api, sandbox, redis):
    s = api.created(sandbox.pause(resource="owners"), resource="owners")
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and done["outcome"]["result"][0]["email"] == OWNER_EMAIL.decode()
    stored = redis.get(result_key(s["id"]))
    assert is_sealed(stored) and OWNER_EMAIL in Opener.from_text(RESULT_PRIVATE_KEY).open(stored)
    with pytest.raises(Unsealable):  # the worker's key does not open what it sealed for the web
        Opener.from_text(SEALING_PRIVATE_KEY).open(stored)
    assert abs(redis.pttl(result_key(s["id"])) - redis.pttl(session_key(s["id"]))) < 1000  # kept as long
    assert not [v for v in redis_values(redis) if OWNER_EMAIL in v]  # record, change log, jobs: nowhere
    logged = b"".join(v for _, f in redis.xrange(events_key(s["id"])) for v in f.values())
    assert b"result" not in logged
    seen = api.get(s["id"], credential=s["client_secret"]).json()
    assert seen["status"] == "succeeded" and seen["outcome"]["result"] is None
    assert OWNER_EMAIL.decode() not in json.dumps(seen)


def test_a_result_over_the_cap_is_recorded_as_such_and_never_half_stored(make_api, sandbox, redis):
    api = make_api(RESULT_MAX_BYTES="1024")  # the sandbox's transactions are a few KB
    s = api.created(sandbox.pause(resource="transactions"), resource="transactions")
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and done["outcome"]["http_status"] in (200, 201)
    assert done["outcome"]["code"] == "result_too_large" and done["outcome"]["result"] is None
    assert "RESULT_MAX_BYTES" in done["outcome"]["message"]
    assert done["resource"] == "transactions" and done["link"] == s["link"]  # where to read it at Belvo
    assert not redis.exists(result_key(s["id"]))
    small = api.created(sandbox.pause(resource="owners"), resource="owners")
    api.submit(small["id"], "111111", credential=small["client_secret"])
    assert isinstance(api.wait(small["id"])["outcome"]["result"], list)  # under the cap: stored whole


def test_a_rotation_keeps_open_sessions_resumable(make_api, sandbox, redis):
    """Sessions sealed to the old public key resume once the worker holds both private keys."""
    new_private, new_public = new_key_pair()
    old_web = make_api()
    waiting = old_web.created(sandbox.pause())
    assert old_web.submit(waiting["id"], "111111", credential=waiting["client_secret"]).status_code == 202
    rotated = make_api(
        SEALING_PUBLIC_KEY=new_public, SEALING_PRIVATE_KEYS=f"{new_private},{SEALING_PRIVATE_KEY}"
    )
    assert rotated.wait(waiting["id"])["status"] == "succeeded"
    fresh = rotated.created(sandbox.pause())
    assert rotated.submit(fresh["id"], "111111", credential=fresh["client_secret"]).status_code == 202
    assert Opener.from_text(new_private).open(redis.get(token_key(fresh["id"]))) == b"111111"
    assert rotated.wait(fresh["id"])["status"] == "succeeded"


def test_a_worker_without_the_key_fails_the_step_without_calling_belvo(make_api, sandbox, capfd):
    other_private, _ = new_key_pair()
    api = make_api(SEALING_PRIVATE_KEYS=other_private)
    pause = sandbox.pause()
    s = api.created(pause)
    api.submit(s["id"], "111111", credential=s["client_secret"])
    done = api.wait(s["id"])
    assert done["status"] == "failed" and done["outcome"]["code"] == "token_unreadable"
    assert sandbox.calls(method="PATCH", session=first(pause)["session"]) == []
    logged = capfd.readouterr().out  # the service logs to stdout
    assert "ERROR" in logged and "not configured" in logged and "111111" not in logged


def test_without_keys_the_service_runs_unsealed_links_off_and_says_so(make_api, sandbox, redis, capfd):
    """What the container check runs: no sealing keys at all. A token flow completes, a WARNING says
    what is stored unsealed, and /v1/links stays off."""
    none = {
        "SEALING_PUBLIC_KEY": "",
        "SEALING_PRIVATE_KEYS": "",
        "RESULT_PUBLIC_KEY": "",
        "RESULT_PRIVATE_KEYS": "",
    }
    api = make_api(**none)
    assert "WARNING" in (logged := capfd.readouterr().out) and "stored unsealed" in logged
    s = api.created(sandbox.pause())
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    assert redis.get(token_key(s["id"])) == b"111111"
    done = api.wait(s["id"])
    assert done["status"] == "succeeded" and done["outcome"]["result"]["id"] == s["link"]
    assert not is_sealed(redis.get(result_key(s["id"])))
    body = {"institution": "heimdall_mx_retail", "username": "u", "password": "p"}
    assert api.request("POST", "/v1/links", json=body).json()["code"] == "links_disabled"
    assert SEALING_PUBLIC_KEY  # (the standard test stacks all seal: tests.support.SERVICE_ENV)
