"""Idempotency-Key: the first answer for a key is stored and replayed (IETF httpapi draft semantics).

A key is scoped to one session and one route. While the first request runs, a repeat answers 409;
a repeat whose payload differs answers 422. The fingerprint never covers the MFA token itself
(a hash of a six-digit token is the token): the token is compared with the stored one while the
step is open, and after that a replay is returned as stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from flask import Response
from redis import Redis

from app.errors import ApiError, problem_response, to_api_error
from mfa.keys import PREFIX, token_key

PENDING_SECONDS = 60
MAX_KEY_LENGTH = 255


def _record_key(scope: str, key: str) -> str:
    return f"{PREFIX}idem:{scope}:{hashlib.sha256(key.encode()).hexdigest()}"


def fingerprint(payload: dict[str, Any]) -> str:
    """Digest of the request payload, the token left out (its presence counts, its value does not)."""
    shown = {k: (v is not None) if k == "token" else v for k, v in sorted(payload.items())}
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()


def run_idempotent(
    redis: Redis,
    *,
    key: str | None,
    scope: str,
    session_id: str,
    payload: dict[str, Any],
    retention_seconds: int,
    handler: Callable[[], Response],
) -> Response:
    """Run `handler` once per key and replay its first answer to every repeat."""
    if key is None:
        return handler()
    if not (0 < len(key) <= MAX_KEY_LENGTH) or not key.isascii() or not key.isprintable():
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Invalid Idempotency-Key",
            f"Use 1-{MAX_KEY_LENGTH} printable ASCII characters.",
        )
    rkey = _record_key(scope, key)
    fp = fingerprint(payload)
    if not redis.set(rkey, json.dumps({"state": "pending", "fp": fp}), nx=True, ex=PENDING_SECONDS):
        return _replay(redis, rkey, fp, session_id, payload.get("token"))
    try:
        resp = handler()
    except Exception as exc:
        err = to_api_error(exc)
        if err.status >= 500:  # the store or the service failed: let the client try the key again
            redis.delete(rkey)
            raise
        resp = problem_response(err)
    record = {
        "state": "done",
        "fp": fp,
        "status": resp.status_code,
        "body": resp.get_data(as_text=True),
        "mimetype": resp.mimetype,
    }
    redis.set(rkey, json.dumps(record), ex=retention_seconds)
    return resp


def _replay(redis: Redis, rkey: str, fp: str, session_id: str, token: str | None) -> Response:
    raw = redis.get(rkey)
    if raw is None:  # expired between our SET and GET: vanishingly rare, treat as in progress
        raise ApiError(
            409,
            "idempotency_key_in_progress",
            "A request with this Idempotency-Key is in progress",
            headers={"Retry-After": "1"},
        )
    record = json.loads(raw)
    if record["fp"] != fp:
        raise ApiError(422, "idempotency_key_reused", "Idempotency-Key reused with a different payload")
    if record["state"] == "pending":
        raise ApiError(
            409,
            "idempotency_key_in_progress",
            "A request with this Idempotency-Key is in progress",
            headers={"Retry-After": "1"},
        )
    stored_token = redis.get(token_key(session_id))
    if (
        token is not None
        and stored_token is not None
        and isinstance(stored_token, bytes)
        and not hmac.compare_digest(stored_token, token.encode())
    ):
        raise ApiError(422, "idempotency_key_reused", "Idempotency-Key reused with a different payload")
    resp = Response(record["body"], status=record["status"], mimetype=record["mimetype"])
    resp.headers["Idempotent-Replayed"] = "true"
    return resp
