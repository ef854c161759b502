"""Idempotency-Key: the first answer that changed state is stored and replayed (IETF httpapi draft).

A key is scoped to one session, one route and the credential that sent it. The fingerprint is an
HMAC-SHA256 of the payload keyed with the request's credential, which the service never stores (a
client secret is kept only as its hash): so it covers the token's value without revealing it, where a
plain hash of a six-digit token would be the token. The same key with another payload or from another
credential answers 422; a repeat while the first request runs answers 409.

Only answers that changed state (2xx) are kept, for IDEMPOTENCY_RETENTION_SECONDS. An error answer
releases its key, so a retry is decided afresh (and meets the same error while nothing has changed).
A session holds at most MAX_KEYS_PER_SESSION keys at once, pending ones included, listed in
mfa:idem:keys:{session id} (a zset of record keys scored by when each lapses): one client secret
cannot grow Redis through its session.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Callable
from typing import Any

from flask import Response
from redis import Redis

from app.errors import ApiError, problem_response, to_api_error
from mfa.clock import now_ms
from mfa.keys import PREFIX

PENDING_SECONDS = 60
MAX_KEY_LENGTH = 255
MAX_KEYS_PER_SESSION = 20

# KEYS: the key's record, the session's index. ARGV: op, now (ms), record value, ttl (ms), cap.
# claim -> {'claimed'} | {'exists', record} | {'full', ms until the first listed key lapses}
# keep  -> stores the answer for ttl; release -> forgets the key.
_SCRIPT = """
local record, index = KEYS[1], KEYS[2]
local op, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local function list(until_ms)
  redis.call('ZADD', index, until_ms, record)
  if redis.call('PTTL', index) < until_ms - now then
    redis.call('PEXPIRE', index, until_ms - now)
  end
end
if op == 'claim' then
  local existing = redis.call('GET', record)
  if existing then
    return {'exists', existing}
  end
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
  if redis.call('ZCARD', index) >= tonumber(ARGV[5]) then
    local first = redis.call('ZRANGE', index, 0, 0, 'WITHSCORES')
    return {'full', tostring(tonumber(first[2]) - now)}
  end
  redis.call('SET', record, ARGV[3], 'PX', ttl)
  list(now + ttl)
  return {'claimed'}
elseif op == 'keep' then
  redis.call('SET', record, ARGV[3], 'PX', ttl)
  list(now + ttl)
else
  redis.call('DEL', record)
  redis.call('ZREM', index, record)
end
return {'ok'}
"""


def record_key(scope: str, key: str) -> str:
    """Where one key's answer is kept."""
    return f"{PREFIX}idem:{scope}:{hashlib.sha256(key.encode()).hexdigest()}"


def index_key(session_id: str) -> str:
    """The list of a session's live keys, which the cap counts."""
    return f"{PREFIX}idem:keys:{session_id}"


def fingerprint(payload: dict[str, Any], credential: str) -> str:
    """HMAC of the canonical payload, keyed with the credential that sent it (never stored anywhere)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(credential.encode(), canonical, hashlib.sha256).hexdigest()


def _in_progress() -> ApiError:
    return ApiError(
        409,
        "idempotency_key_in_progress",
        "A request with this Idempotency-Key is in progress",
        headers={"Retry-After": "1"},
    )


def run_idempotent(
    redis: Redis,
    *,
    key: str | None,
    scope: str,
    session_id: str,
    credential: str,
    payload: dict[str, Any],
    retention_seconds: int,
    handler: Callable[[], Response],
) -> Response:
    """Run `handler` once per key and replay the answer to every repeat, if it changed state."""
    if key is None:
        return handler()
    if not (0 < len(key) <= MAX_KEY_LENGTH) or not key.isascii() or not key.isprintable():
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Invalid Idempotency-Key",
            f"Use 1-{MAX_KEY_LENGTH} printable ASCII characters.",
        )
    script = redis.register_script(_SCRIPT)
    keys = [record_key(scope, key), index_key(session_id)]
    fp = fingerprint(payload, credential)

    def run(op: str, value: str = "", ttl_ms: int = 0) -> list[Any]:
        found: list[Any] = script(keys=keys, args=[op, now_ms(), value, ttl_ms, MAX_KEYS_PER_SESSION])
        return found

    claimed = run("claim", json.dumps({"state": "pending", "fp": fp}), PENDING_SECONDS * 1000)
    if claimed[0] == b"exists":
        return _replay(json.loads(claimed[1]), fp)
    if claimed[0] == b"full":
        raise ApiError(
            429,
            "idempotency_key_limit",
            "Too many Idempotency-Keys for this session",
            f"A session holds at most {MAX_KEYS_PER_SESSION} keys at once; retry after the Retry-After"
            " seconds, or without a new key.",
            headers={"Retry-After": str(max(1, math.ceil(int(claimed[1]) / 1000)))},
        )
    try:
        resp = handler()
    except Exception as exc:
        run("release")  # nothing changed: the key is free for a retry
        err = to_api_error(exc)
        if err.status >= 500:
            raise
        return problem_response(err)
    if resp.status_code >= 300:
        run("release")
        return resp
    record = {
        "state": "done",
        "fp": fp,
        "status": resp.status_code,
        "body": resp.get_data(as_text=True),
        "mimetype": resp.mimetype,
    }
    run("keep", json.dumps(record), retention_seconds * 1000)
    return resp


def _replay(record: dict[str, Any], fp: str) -> Response:
    if not hmac.compare_digest(record["fp"], fp):
        raise ApiError(
            422,
            "idempotency_key_reused",
            "Idempotency-Key reused with a different payload",
            "The same key was sent with another body or from another credential.",
        )
    if record["state"] == "pending":
        raise _in_progress()
    resp = Response(record["body"], status=record["status"], mimetype=record["mimetype"])
    resp.headers["Idempotent-Replayed"] = "true"
    return resp
