"""The session state machine: every transition is one atomic Redis operation that checks where it starts.

Keys (one Redis instance, not Cluster: scripts derive the Belvo-session index key from a prefix):
  mfa:session:{id}    hash, the session record (app.models.MfaSession)
  mfa:token:{id}      the step's MFA token, from submit until the step ends, then deleted
  mfa:creds:{id}      the bank credentials of a registration, Fernet-encrypted, until Belvo has answered
  mfa:belvo:{belvo}   Belvo session id -> our id, refuses a second session for the same Belvo session
  mfa:expiry          zset id -> expires_at (ms) of open sessions: the sweeper's work list, no key scans
  mfa:leases          zset id -> lease deadline (ms) of calls in flight; a lapsed lease is a dead worker
  mfa:retries         zset id -> when its next attempt is due (ms); the sweeper enqueues it then

Transitions (app/transitions.lua holds the scripts):
  create         -> awaiting_token (a 428 the backend got)
  create_calling -> registering | retrieving (MULTI, enqueues the call job in the same transaction)
  submit_token   awaiting_token -> submitted (WATCH/MULTI, enqueues the resume job in the same transaction)
  cancel         awaiting_token -> cancelled
  expire_due     awaiting_token | submitted (no call in flight) -> expired (failed if calls were tried)
  begin_call     calling: takes the lease, hands out the token; a lapsed earlier call -> failed
  release_call   ends an attempt that will be retried, listing the retry in mfa:retries
  promote_retry  a due retry -> its job, enqueued in the same transaction
  finish         calling -> succeeded | failed | expired
  next_step      calling -> awaiting_token (Belvo's 428; step + 1 when it answered a resume)
  recover_lapsed calling with a lapsed lease -> failed (upstream_outcome_unknown)
  abort          calling -> failed, when the job raised
"calling" is submitted, registering or retrieving: a session with an upstream call to make.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError

from app.exceptions import DuplicateSession, SessionExpired, SessionNotAwaitingToken, SessionNotFound
from app.models import MfaSession, SessionStatus, expects_user_input, new_record

PREFIX = "mfa:"
EXPIRY_ZSET = PREFIX + "expiry"
LEASES_ZSET = PREFIX + "leases"
RETRIES_ZSET = PREFIX + "retries"
# The token outlives Belvo's expiry a little, so a call that starts at the last moment by the worker's
# clock still finds it; it is deleted the moment its step ends in any case.
TOKEN_GRACE_MS = 5000

OUTCOME_EXPIRED = {"code": "session_expired", "message": "The MFA session expired before it could be resumed"}
OUTCOME_CANCELLED = {"code": "cancelled", "message": "The session was cancelled"}
OUTCOME_UNAVAILABLE = {"code": "upstream_unavailable", "message": "Belvo could not be reached in time"}
OUTCOME_UNKNOWN = {
    "code": "upstream_outcome_unknown",
    "message": "The worker stopped during the call to Belvo; not repeated, as Belvo may have acted on it",
}

OUTCOME_INTERNAL = {"code": "internal_error", "message": "The resume job failed; see the worker log"}

_SECTIONS = re.split(r"^-- @(\w+)$", Path(__file__).with_name("transitions.lua").read_text(), flags=re.M)
_SCRIPTS = dict(zip(_SECTIONS[1::2], _SECTIONS[2::2], strict=True))
_PRELUDE = _SCRIPTS.pop("prelude")


def session_key(session_id: str) -> str:
    return f"{PREFIX}session:{session_id}"


def token_key(session_id: str) -> str:
    return f"{PREFIX}token:{session_id}"


def creds_key(session_id: str) -> str:
    return f"{PREFIX}creds:{session_id}"


def belvo_key(belvo_session: str) -> str:
    return f"{PREFIX}belvo:{belvo_session}"


def new_session_id() -> str:
    """Our opaque session id: 128 random bits, unrelated to Belvo's session id."""
    return "mfa_" + secrets.token_hex(16)


def _decode(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


@dataclass(frozen=True)
class Claim:
    """What begin_call decided: `go` (call Belvo now) or why not."""

    verdict: str
    session: MfaSession | None = None
    token: str | None = None
    attempt: int = 0


class SessionStore:
    """Reads sessions and moves them between statuses, atomically."""

    def __init__(self, redis: Redis, retention_seconds: int) -> None:
        self.redis = redis
        self.retention_ms = retention_seconds * 1000
        self._scripts = {name: redis.register_script(_PRELUDE + body) for name, body in _SCRIPTS.items()}

    def _run(self, name: str, session_id: str, now_ms: int, *args: Any, client: Any = None) -> Any:
        keys = [
            session_key(session_id),
            token_key(session_id),
            EXPIRY_ZSET,
            LEASES_ZSET,
            creds_key(session_id),
            RETRIES_ZSET,
        ]
        argv = [session_id, now_ms, self.retention_ms, PREFIX + "belvo:", *args]
        result = self._scripts[name](keys=keys, args=argv, client=client)
        return result.decode() if isinstance(result, bytes) else result

    def get(self, session_id: str) -> MfaSession:
        """The stored session, or SessionNotFound."""
        raw = self.redis.hgetall(session_key(session_id))
        if not raw:
            raise SessionNotFound(session_id)
        return MfaSession.from_hash(_decode(raw))

    def create(
        self,
        *,
        belvo_session: str,
        link: str,
        expiry_seconds: int,
        challenge: dict[str, Any] | None,
        resource: str,
        save_data: bool | None,
        external_ref: str | None,
        secret_hash: str,
        now_ms: int,
    ) -> MfaSession:
        """Store a paused session; DuplicateSession if Belvo's session id is already stored."""
        session_id = new_session_id()
        expires_at = now_ms + expiry_seconds * 1000
        fields = new_record(
            session_id,
            status=SessionStatus.AWAITING_TOKEN,
            resource=resource,
            link=link,
            expires_at_ms=expires_at,
            now_ms=now_ms,
            secret_hash=secret_hash,
            external_ref=external_ref,
            belvo_session=belvo_session,
            challenge=challenge,
            save_data=save_data,
        )
        flat = [item for pair in fields.items() for item in pair]
        ttl_ms = expires_at - now_ms + self.retention_ms
        created = self._run("create", session_id, now_ms, belvo_session, expires_at, ttl_ms, *flat)
        if not created:
            raise DuplicateSession(belvo_session)
        return MfaSession.from_hash(fields)

    def create_calling(
        self,
        *,
        status: SessionStatus,
        resource: str,
        link: str | None,
        request: dict[str, Any] | None,
        encrypted_credentials: bytes | None,
        external_ref: str | None,
        secret_hash: str,
        deadline_seconds: int,
        now_ms: int,
        enqueue: Callable[[Pipeline, MfaSession], None],
    ) -> MfaSession:
        """A session whose first upstream call (register or retrieve) is still to make; its job is enqueued
        in the same MULTI, so the record never exists without the work that will end it."""
        assert status in (SessionStatus.REGISTERING, SessionStatus.RETRIEVING)
        session_id = new_session_id()
        deadline = now_ms + deadline_seconds * 1000
        fields = new_record(
            session_id,
            status=status,
            resource=resource,
            link=link,
            expires_at_ms=deadline,
            now_ms=now_ms,
            secret_hash=secret_hash,
            external_ref=external_ref,
            save_data=request.get("save_data") if request else None,
            request=request,
        )
        session = MfaSession.from_hash(fields)
        ttl_ms = deadline - now_ms + self.retention_ms
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.multi()  # explicit, so RQ's enqueue joins this transaction instead of opening its own
            pipe.hset(session_key(session_id), mapping=fields)
            pipe.pexpire(session_key(session_id), ttl_ms)
            pipe.zadd(EXPIRY_ZSET, {session_id: deadline})
            if encrypted_credentials is not None:
                pipe.set(creds_key(session_id), encrypted_credentials, px=deadline - now_ms)
            enqueue(pipe, session)
            pipe.execute()
        return session

    def call_inputs(self, session_id: str) -> tuple[dict[str, Any] | None, bytes | None]:
        """What a register or retrieve call sends: the stored request fields and encrypted credentials."""
        raw_request = self.redis.hget(session_key(session_id), "request")
        return (json.loads(raw_request) if raw_request else None), self.redis.get(creds_key(session_id))

    def submit_token(
        self,
        session_id: str,
        token: str | None,
        now_ms: int,
        enqueue: Callable[[Pipeline, MfaSession], None],
        seen: MfaSession | None = None,
    ) -> MfaSession:
        """awaiting_token -> submitted, storing the token and enqueuing the resume job in one transaction.

        Of any number of concurrent calls for one step exactly one commits: the others see the
        WATCHed hash change, re-read it and get SessionNotAwaitingToken. `seen` is the session as the
        caller has just read it: if, under WATCH, its status and step are still those, it is current
        (a step's fields never change while it awaits its token) and is not read again.
        """
        hkey = session_key(session_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(hkey)
                    session = self._watched(pipe, hkey, session_id, seen)
                    seen = None  # after a WatchError, read the whole record again
                    if session.status is SessionStatus.AWAITING_TOKEN and session.is_past_expiry(now_ms):
                        pipe.unwatch()
                        self.expire_due(session_id, now_ms)
                        raise SessionExpired(session_id)
                    if session.status is SessionStatus.EXPIRED:
                        raise SessionExpired(session_id)
                    if session.status is not SessionStatus.AWAITING_TOKEN:
                        raise SessionNotAwaitingToken(session.status)
                    submitted = replace(session, status=SessionStatus.SUBMITTED, updated_at_ms=now_ms)
                    pipe.multi()
                    pipe.hset(
                        hkey,
                        mapping={
                            "status": submitted.status.value,
                            "updated_at": now_ms,
                            "attempts": 0,
                            "in_flight": 0,
                            "unanswered": 0,
                        },
                    )
                    if token is not None and session.expects_user_input:
                        ttl = max(1, session.expires_at_ms - now_ms) + TOKEN_GRACE_MS
                        pipe.set(token_key(session_id), token, px=ttl)
                    enqueue(pipe, submitted)
                    pipe.execute()
                    return submitted
                except WatchError:
                    continue

    @staticmethod
    def _watched(pipe: Pipeline, hkey: str, session_id: str, seen: MfaSession | None) -> MfaSession:
        """The session under WATCH: `seen` if its status and step still hold, else read afresh."""
        if seen is not None:
            status, step = pipe.hmget(hkey, "status", "step")
            if status is not None and (status.decode(), int(step or b"1")) == (seen.status.value, seen.step):
                return seen
        raw = pipe.hgetall(hkey)
        if not raw:
            raise SessionNotFound(session_id)
        return MfaSession.from_hash(_decode(raw))

    def cancel(self, session_id: str, now_ms: int) -> MfaSession:
        """awaiting_token -> cancelled; SessionNotAwaitingToken from anywhere else."""
        status = self._run(
            "cancel", session_id, now_ms, json.dumps(OUTCOME_CANCELLED), json.dumps(OUTCOME_EXPIRED)
        )
        if status is None:
            raise SessionNotFound(session_id)
        if status != "ok":
            raise SessionNotAwaitingToken(SessionStatus(status))
        return self.get(session_id)

    def expire_due(self, session_id: str, now_ms: int) -> str | None:
        """Close a session whose Belvo session is over; returns the status it now has."""
        return self._run(
            "expire_due", session_id, now_ms, json.dumps(OUTCOME_EXPIRED), json.dumps(OUTCOME_UNAVAILABLE)
        )

    def begin_call(self, session_id: str, step: int, now_ms: int, lease_ms: int, attempt: int = 1) -> Claim:
        """Take the lease for this attempt's upstream call, or say why no call may be made."""
        result = self._run(
            "begin_call",
            session_id,
            now_ms,
            step,
            now_ms + lease_ms,
            json.dumps(OUTCOME_UNKNOWN),
            json.dumps(OUTCOME_EXPIRED),
            json.dumps(OUTCOME_UNAVAILABLE),
            attempt,
        )
        verdict = result[0].decode()
        if verdict != "go":
            return Claim(verdict)
        token = result[1].decode() if result[1] else None
        return Claim("go", self.get(session_id), token, int(result[2]))

    def extend_lease(self, session_id: str, now_ms: int, lease_ms: int) -> None:
        """Push the lease of a call still in flight forward (XX: never revives a closed one)."""
        self.redis.zadd(LEASES_ZSET, {session_id: now_ms + lease_ms}, xx=True)

    def release_call(
        self, session_id: str, step: int, now_ms: int, retry_at_ms: int, unanswered: bool
    ) -> bool:
        """End an attempt that will be retried at `retry_at_ms`; `unanswered`: Belvo never answered it."""
        return bool(
            self._run("release_call", session_id, now_ms, step, retry_at_ms, "1" if unanswered else "0")
        )

    def promote_retry(
        self, session_id: str, now_ms: int, enqueue: Callable[[Pipeline, MfaSession, int], None]
    ) -> bool:
        """Enqueue a due retry's job in the same MULTI that takes it off mfa:retries.

        The job is added whatever the script decides; if another sweeper took the retry first, this
        job is a duplicate of the same attempt, and begin_call answers it `stale`. Nothing is lost.
        """
        raw = self.redis.hgetall(session_key(session_id))
        if not raw:
            self.redis.zrem(RETRIES_ZSET, session_id)
            return False
        session = MfaSession.from_hash(_decode(raw))
        attempt = session.attempts + 1
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.multi()
            self._run("take_retry", session_id, now_ms, session.step, attempt, client=pipe)
            enqueue(pipe, session, attempt)
            taken = pipe.execute()[0]
        return bool(taken)

    def finish(
        self, session_id: str, step: int, status: SessionStatus, outcome: dict[str, Any], now_ms: int
    ) -> bool:
        """submitted -> a final status with its outcome; False if the step had already ended."""
        assert status.is_final
        return bool(self._run("finish", session_id, now_ms, step, status.value, json.dumps(outcome)))

    def next_step(
        self,
        session_id: str,
        step: int,
        *,
        belvo_session: str,
        link: str,
        challenge: dict[str, Any] | None,
        expiry_seconds: int,
        now_ms: int,
    ) -> bool:
        """calling -> awaiting_token for Belvo's (next) MFA step; False if the step had already ended."""
        expires_at = now_ms + expiry_seconds * 1000
        ttl_ms = expires_at - now_ms + self.retention_ms
        return bool(
            self._run(
                "next_step",
                session_id,
                now_ms,
                step,
                belvo_session,
                json.dumps(challenge) if challenge is not None else "",
                "1" if expects_user_input(challenge) else "0",
                expires_at,
                ttl_ms,
                link,
            )
        )

    def recover_lapsed(self, session_id: str, now_ms: int) -> bool:
        """Close a session whose call's lease lapsed (its worker died); True if it was closed."""
        return bool(self._run("recover_lapsed", session_id, now_ms, json.dumps(OUTCOME_UNKNOWN)))

    def abort(self, session_id: str, step: int, now_ms: int) -> bool:
        """Close a step whose job raised: outcome unknown if its call was in flight, else internal_error."""
        return bool(
            self._run(
                "abort", session_id, now_ms, step, json.dumps(OUTCOME_UNKNOWN), json.dumps(OUTCOME_INTERNAL)
            )
        )

    def due(self, zset: str, now_ms: int, limit: int = 500) -> list[str]:
        """Ids in the expiry or lease zset whose time has come."""
        return [m.decode() for m in self.redis.zrangebyscore(zset, "-inf", now_ms, start=0, num=limit)]
