"""Idempotency-Key (app/idempotency.py): only answers that changed state are kept, a session holds a
bounded number of keys, and what is kept reveals no token."""

from __future__ import annotations

import hashlib
import json
import uuid

from app.idempotency import MAX_KEYS_PER_SESSION, fingerprint, index_key, record_key
from tests.support import API_KEY


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def _idem_keys(redis) -> list[bytes]:
    return list(redis.scan_iter("mfa:idem:*"))


def test_answers_that_change_nothing_are_not_stored(api, sandbox, redis):
    """A 409 for a cancelled session, a 422, a 410 or a 400: each with a fresh key, none kept in Redis."""
    s = api.created(sandbox.pause())
    assert api.cancel(s["id"], credential=s["client_secret"]).status_code == 200
    cs = s["client_secret"]
    for _ in range(50):
        assert api.submit(s["id"], "111111", credential=cs, headers=_key()).status_code == 409
    expired = api.created(sandbox.pause(expiry=1))
    redis.hset(f"mfa:session:{expired['id']}", "expires_at", 1)  # Belvo's session is over
    assert (
        api.submit(expired["id"], "1", credential=expired["client_secret"], headers=_key()).status_code == 410
    )
    assert _idem_keys(redis) == []
    # A repeat of a refused request is decided afresh, not replayed.
    key = _key()
    first = api.submit(s["id"], "111111", credential=cs, headers=key)
    again = api.submit(s["id"], "111111", credential=cs, headers=key)
    assert first.status_code == again.status_code == 409 and "Idempotent-Replayed" not in again.headers


def test_the_answer_that_changed_state_is_kept_and_replayed(api, sandbox, redis):
    s = api.created(sandbox.pause())
    key = _key()
    r1 = api.submit(s["id"], "738201", credential=s["client_secret"], headers=key)
    assert r1.status_code == 202
    rkey = record_key(f"token:{s['id']}", key["Idempotency-Key"])
    assert 0 < redis.ttl(rkey) <= 86400 and redis.zscore(index_key(s["id"]), rkey)
    r2 = api.submit(s["id"], "738201", credential=s["client_secret"], headers=key)
    assert r2.status_code == 202 and r2.headers["Idempotent-Replayed"] == "true" and r2.json() == r1.json()


def test_the_kept_fingerprint_reveals_no_token_and_binds_the_credential(api, sandbox, redis):
    s = api.created(sandbox.pause())
    key = _key()
    assert api.submit(s["id"], "738201", credential=s["client_secret"], headers=key).status_code == 202
    raw = redis.get(record_key(f"token:{s['id']}", key["Idempotency-Key"]))
    record = json.loads(raw)
    assert b"738201" not in raw
    # A plain hash of the payload could be brute-forced over a million tokens; this is keyed with the
    # client secret, which Redis does not hold (only its SHA-256).
    plain = hashlib.sha256(json.dumps({"token": "738201"}, sort_keys=True, separators=(",", ":")).encode())
    assert record["fp"] != plain.hexdigest()
    assert record["fp"] == fingerprint({"token": "738201"}, s["client_secret"])
    # The same key and payload from another credential is another request.
    r = api.submit(s["id"], "738201", credential=API_KEY, headers=key)
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"


def test_a_session_holds_a_bounded_number_of_keys(api, sandbox, redis):
    """Each chained step keeps one answer; past MAX_KEYS_PER_SESSION live keys a new one is refused
    (429, with Retry-After), while a submission without a key still goes through."""
    s = api.created(sandbox.pause())
    cs = s["client_secret"]
    for step in range(1, MAX_KEYS_PER_SESSION + 1):
        api.wait(s["id"], {"awaiting_token"}, step=step)
        assert api.submit(s["id"], "999999", credential=cs, headers=_key()).status_code == 202  # another step
    api.wait(s["id"], {"awaiting_token"}, step=MAX_KEYS_PER_SESSION + 1)
    r = api.submit(s["id"], "111111", credential=cs, headers=_key())
    assert r.status_code == 429 and r.json()["code"] == "idempotency_key_limit", r.text
    assert 1 <= int(r.headers["Retry-After"]) <= 86400
    assert redis.zcard(index_key(s["id"])) == MAX_KEYS_PER_SESSION
    assert api.get(s["id"]).json()["status"] == "awaiting_token"  # the refused request changed nothing
    assert api.submit(s["id"], "111111", credential=cs).status_code == 202
