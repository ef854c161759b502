"""The session state machine: every transition is one atomic Redis operation that checks where it starts.

Keys: see mfa/keys.py. Transitions (the Lua ones are in mfa/transitions.lua):
  create          -> awaiting_token (a 428 the backend got), or
                  -> registering | retrieving | updating (MULTI, enqueues the first call's job with it);
                  either lists the session under its external_ref (mfa:ref:{ref}) in the same transaction
  submit_token    awaiting_token -> submitted (WATCH/MULTI, enqueues the resume job in the same transaction)
  cancel          awaiting_token -> cancelled
  expire_due      awaiting_token | calling with no call in flight -> expired (failed if calls were tried)
  begin_call      calling: takes the lease, hands out the token; a lapsed earlier call -> failed
  release_call    ends an attempt that will be retried, listing the retry in mfa:retries
  promote_retry   a due retry -> its job, enqueued in the same transaction
  finish          calling -> succeeded | failed | expired (a registered link's id noted on the session)
  next_step       calling -> awaiting_token (Belvo's 428; step + 1 when it answered a resume)
  recover_lapsed  calling with a lapsed lease -> failed (upstream_outcome_unknown)
  abort           calling -> failed, when the job raised
"Calling" (mfa.session.CALLING_STATUSES) is submitted, registering, retrieving or updating: a session
with an upstream call to make or in flight. Every transition a reader can see bumps the record's `version`.
A session with webhook destinations also gets, from the same script, the webhook event of each change
that makes one (mfa/outbox.lua, mfa/webhooks.py EVENT_BY_STATUS): creation awaiting a token, each next
step, and each end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError
from rq import Queue

from mfa import metrics, tracing
from mfa.dispatch import Dispatcher
from mfa.errors import DuplicateSession, SessionExpired, SessionNotAwaitingToken, SessionNotFound
from mfa.keys import (
    CHANGES_CHANNEL,
    EXPIRY_ZSET,
    LEASES_ZSET,
    SessionKeys,
    creds_key,
    events_key,
    result_key,
    session_key,
    token_key,
)
from mfa.pause import DEFAULT_EXPIRY_SECONDS, TokenRequired
from mfa.replicas import ReplicaAck
from mfa.scripts import Transitions
from mfa.session import (
    EVENTS_KEPT,
    OUTCOME_EXPIRED,
    OUTCOME_UNAVAILABLE,
    OUTCOME_UNKNOWN,
    SNAPSHOT_EXCLUDED,
    STANDARD_OUTCOMES,
    ClaimVerdict,
    MfaSession,
    NewSession,
    RecordField,
    SessionStatus,
    expects_user_input,
    new_session_id,
)
from mfa.settings import Settings

# The token outlives Belvo's expiry a little, so a call that starts at the last moment by the worker's
# clock still finds it; it is deleted the moment its step ends in any case.
TOKEN_GRACE_MS = 5000


def _decode(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A hash as redis-py returns it (bytes, the client does not decode) as text."""
    return {k.decode(): v.decode() for k, v in raw.items()}


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


# Claims that close the session themselves (mfa/transitions.lua, begin_call): the status and code left.
_CLOSED_BY_CLAIM = {
    ClaimVerdict.UNKNOWN: (SessionStatus.FAILED.value, OUTCOME_UNKNOWN["code"]),
    ClaimVerdict.EXPIRED: (SessionStatus.EXPIRED.value, OUTCOME_EXPIRED["code"]),
    ClaimVerdict.FAILED: (SessionStatus.FAILED.value, OUTCOME_UNAVAILABLE["code"]),
}


# Where the request that caused a call keeps its context in the record, so the call's retries continue it.
_ORIGIN_FIELDS = {"request_id": RecordField.REQUEST_ID.value, "traceparent": RecordField.TRACEPARENT.value}


def _origin_fields() -> dict[Any, Any]:  # Any: redis-py's mapping types are invariant in the key
    """The current request's id and trace context as record fields (none outside a request)."""
    return {_ORIGIN_FIELDS[k]: v for k, v in tracing.origin().items() if k in _ORIGIN_FIELDS}


def _closed(status: SessionStatus, *, phase: str) -> None:
    """Count a session the expiry rule closed: expired, or failed if its calls were tried unanswered."""
    outcome = OUTCOME_UNAVAILABLE if status is SessionStatus.FAILED else STANDARD_OUTCOMES[status.value]
    metrics.session_closed(status.value, outcome["code"], phase=phase)


@dataclass(frozen=True)
class Claim:
    """What begin_call decided: GO (call Belvo now) or why not."""

    verdict: ClaimVerdict
    session: MfaSession | None = None
    token: bytes | None = None  # as stored: sealed when the web seals (mfa/sealing.py)
    attempt: int = 0


class SessionStore:
    """Reads sessions and moves them between statuses, atomically; enqueues jobs through `dispatcher`."""

    def __init__(
        self,
        redis: Redis,
        retention_seconds: int,
        dispatcher: Dispatcher,
        default_expiry_seconds: int = DEFAULT_EXPIRY_SECONDS,
        ack: ReplicaAck | None = None,
    ) -> None:
        self.redis = redis
        self.retention_ms = retention_seconds * 1000
        self.dispatcher = dispatcher
        self.default_expiry_seconds = default_expiry_seconds  # for a 428 that carries no expiry
        self.ack = ack  # submissions and cancels wait for replicas before they return (mfa/replicas.py)
        self._t = Transitions(redis)

    @classmethod
    def for_settings(cls, settings: Settings, redis: Redis) -> SessionStore:
        """The store on `redis`, enqueuing on the resume queue as the settings say."""
        dispatcher = Dispatcher(
            Queue(settings.resume_queue, connection=redis),
            upstream_timeout_seconds=settings.upstream_timeout_seconds,
            failure_ttl_seconds=settings.session_retention_seconds,
        )
        ack = (
            ReplicaAck(settings.redis_wait_replicas, settings.redis_wait_timeout_ms)
            if settings.redis_wait_replicas
            else None
        )
        return cls(
            redis, settings.session_retention_seconds, dispatcher, settings.default_mfa_expiry_seconds, ack
        )

    def _common(self, session_id: str, now_ms: int) -> dict[str, Any]:
        return {"id": session_id, "now": now_ms, "retention": self.retention_ms}

    def get(self, session_id: str) -> MfaSession:
        """The stored session, or SessionNotFound."""
        raw = self.redis.hgetall(session_key(session_id))
        if not raw:
            raise SessionNotFound(session_id)
        return MfaSession.from_record(_decode(raw))

    def create(self, new: NewSession, now_ms: int) -> MfaSession:
        """Store a new session. A paused one (awaiting_token) is refused with DuplicateSession if Belvo's
        session is already stored; one with a first call to make has that call's job enqueued with it,
        so the record never exists without the work that will end it."""
        session = new.build(new.id or new_session_id(), now_ms)
        record = session.to_record()
        assert session.expires_at_ms is not None
        ttl_ms = session.expires_at_ms - now_ms + self.retention_ms
        if session.status is SessionStatus.AWAITING_TOKEN:
            assert session.belvo_session is not None
            created = self._t.create(
                SessionKeys.of(session.id),
                **self._common(session.id, now_ms),
                belvo_session=session.belvo_session,
                expires_at=session.expires_at_ms,
                ttl=ttl_ms,
                rest=tuple(item for pair in record.items() for item in pair),
            )
            if not created:
                raise DuplicateSession(session.belvo_session)
            metrics.session_created(session.status.value)
            return session
        assert session.status.is_calling
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.multi()  # explicit, so RQ's enqueue joins this transaction instead of opening its own
            record.update(_origin_fields())
            pipe.hset(session_key(session.id), mapping=record)  # type: ignore[arg-type]  # invariant key type
            pipe.pexpire(session_key(session.id), ttl_ms)
            pipe.zadd(EXPIRY_ZSET, {session.id: session.expires_at_ms})
            if new.sealed_credentials is not None:
                pipe.set(creds_key(session.id), new.sealed_credentials, px=session.expires_at_ms - now_ms)
            if session.external_ref is not None:
                self._t.index_ref(
                    SessionKeys.of(session.id), **self._common(session.id, now_ms), ttl=ttl_ms, client=pipe
                )
            self.dispatcher.enqueue(pipe, session, now_ms=now_ms)
            pipe.execute()
        metrics.session_created(session.status.value)
        return session

    def sealed_credentials(self, session_id: str) -> bytes | None:
        """A registration's sealed bank credentials, until Belvo has answered the register call."""
        raw = self.redis.get(creds_key(session_id))
        return raw if isinstance(raw, bytes) else None

    def submit_token(
        self, session_id: str, token: bytes | str | None, now_ms: int, seen: MfaSession | None = None
    ) -> MfaSession:
        """awaiting_token -> submitted, storing the token and enqueuing the resume job in one transaction.

        `token` is stored as given: the web seals it first when SEALING_PUBLIC_KEY is set.

        Of any number of concurrent calls for one step exactly one commits: the others see the
        WATCHed hash change, re-read it and get SessionNotAwaitingToken. `seen` is the session as the
        caller has just read it: if, under WATCH, its status and step are still those, it is current
        (a step's fields never change while it awaits its token) and is not read again.
        """
        hkey = session_key(session_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(hkey)  # type: ignore[no-untyped-call]
                    session = self._watched(pipe, hkey, session_id, seen)
                    seen = None  # after a WatchError, read the whole record again
                    if session.reads_expired(now_ms):
                        pipe.unwatch()
                        self.expire_due(session_id, now_ms)
                        raise SessionExpired(session_id)
                    if session.status is SessionStatus.EXPIRED:
                        raise SessionExpired(session_id)
                    if session.status is not SessionStatus.AWAITING_TOKEN:
                        raise SessionNotAwaitingToken(session.status)
                    submitted = replace(
                        session,
                        status=SessionStatus.SUBMITTED,
                        updated_at_ms=now_ms,
                        version=session.version + 1,
                    )
                    pipe.multi()
                    f = RecordField
                    pipe.hset(
                        hkey,
                        mapping={
                            f.STATUS.value: submitted.status.value,
                            f.UPDATED_AT.value: now_ms,
                            f.ATTEMPTS.value: 0,
                            f.IN_FLIGHT.value: 0,
                            f.UNCERTAIN.value: 0,
                            **_origin_fields(),
                        },
                    )
                    pipe.hincrby(hkey, f.VERSION.value, 1)
                    if token is not None and session.expects_user_input:
                        assert session.expires_at_ms is not None
                        ttl = max(1, session.expires_at_ms - now_ms) + TOKEN_GRACE_MS
                        pipe.set(token_key(session_id), token, px=ttl)
                    self._emit(pipe, submitted, now_ms)
                    self.dispatcher.enqueue(pipe, submitted, now_ms=now_ms)
                    pipe.execute()
                    if self.ack is not None:
                        self.ack.confirm(self.redis)
                    return submitted
                except WatchError:
                    continue

    def _emit(self, pipe: Pipeline, session: MfaSession, now_ms: int) -> None:
        """Within `pipe`'s MULTI, what the scripts' emit() does: log the change and announce it."""
        assert session.expires_at_ms is not None
        key = events_key(session.id)
        snapshot = {k: v for k, v in session.to_record().items() if k not in SNAPSHOT_EXCLUDED}
        pipe.xadd(key, snapshot, id=f"0-{session.version}", maxlen=EVENTS_KEPT, approximate=True)  # type: ignore[arg-type]
        pipe.pexpire(key, session.expires_at_ms - now_ms + self.retention_ms)  # with the record itself
        pipe.publish(CHANGES_CHANNEL, f"{session.id} {session.version}")

    def events_after(self, session_id: str, version: int) -> list[MfaSession]:
        """The session as each change after `version` left it, oldest first (creation is not logged)."""
        entries = self.redis.xrange(events_key(session_id), min=f"0-{version + 1}") or []
        return [MfaSession.from_record(_decode(fields or {})) for _, fields in entries]

    @staticmethod
    def _watched(pipe: Pipeline, hkey: str, session_id: str, seen: MfaSession | None) -> MfaSession:
        """The session under WATCH: `seen` if its status and step still hold, else read afresh."""
        f = RecordField
        if seen is not None:
            status, step, version = pipe.hmget(hkey, f.STATUS.value, f.STEP.value, f.VERSION.value)
            if status is not None and (_text(status), int(step or b"1")) == (seen.status.value, seen.step):
                return replace(seen, version=int(version or b"1"))
        raw = pipe.hgetall(hkey)
        if not raw:
            raise SessionNotFound(session_id)
        return MfaSession.from_record(_decode(raw))

    def cancel(self, session_id: str, now_ms: int) -> MfaSession:
        """awaiting_token -> cancelled; SessionNotAwaitingToken from anywhere else."""
        result = self._t.cancel(SessionKeys.of(session_id), **self._common(session_id, now_ms))
        if not result:
            raise SessionNotFound(session_id)
        status, closed = SessionStatus(_text(result[0])), bool(int(result[1]))
        if closed:
            _closed(status, phase=SessionStatus.AWAITING_TOKEN.value)
        if not closed or status is not SessionStatus.CANCELLED:
            raise SessionNotAwaitingToken(status)
        if self.ack is not None:
            self.ack.confirm(self.redis)
        return self.get(session_id)

    def expire_due(self, session_id: str, now_ms: int) -> str | None:
        """Close a session whose Belvo session is over; returns the status it now has."""
        result = self._t.expire_due(SessionKeys.of(session_id), **self._common(session_id, now_ms))
        if not result:
            return None
        status, closed_from = _text(result[0]), _text(result[1])
        if closed_from:
            _closed(SessionStatus(status), phase=closed_from)
        return status

    def begin_call(self, session_id: str, step: int, now_ms: int, lease_ms: int, attempt: int = 1) -> Claim:
        """Take the lease for this attempt's upstream call, or say why no call may be made."""
        result = self._t.begin_call(
            SessionKeys.of(session_id),
            **self._common(session_id, now_ms),
            step=step,
            lease_deadline=now_ms + lease_ms,
            attempt=attempt,
        )
        verdict = ClaimVerdict(_text(result[0]))
        if verdict in _CLOSED_BY_CLAIM:
            metrics.session_closed(*_CLOSED_BY_CLAIM[verdict], phase="calling")
        if verdict is not ClaimVerdict.GO:
            return Claim(verdict)
        return Claim(verdict, self.get(session_id), result[1] or None, int(result[2]))

    def extend_leases(self, session_ids: Iterable[str], now_ms: int, lease_ms: int) -> None:
        """Push the leases of calls in flight forward, in one command (XX: never revives a closed one)."""
        self.redis.zadd(LEASES_ZSET, dict.fromkeys(session_ids, now_ms + lease_ms), xx=True)

    def release_call(
        self, session_id: str, step: int, now_ms: int, retry_at_ms: int, uncertain: bool
    ) -> bool:
        """End an attempt that will be retried at `retry_at_ms`; `uncertain`: Belvo may have acted on it."""
        return bool(
            self._t.release_call(
                SessionKeys.of(session_id),
                **self._common(session_id, now_ms),
                step=step,
                retry_at=retry_at_ms,
                uncertain="1" if uncertain else "0",
            )
        )

    def promote_retry(self, session_id: str, now_ms: int) -> bool:
        """Enqueue a due retry's job in the same MULTI that takes it off mfa:retries.

        The job is added whatever the script decides; if another sweeper took the retry first, this
        job is a duplicate of the same attempt, and begin_call answers it `stale`. Nothing is lost.
        """
        keys = SessionKeys.of(session_id)
        raw = self.redis.hgetall(keys.session)
        if not raw:
            self.redis.zrem(keys.retries, session_id)
            return False
        session = MfaSession.from_record(_decode(raw))
        attempt = session.attempts + 1
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.multi()
            self._t.take_retry(
                keys, **self._common(session_id, now_ms), step=session.step, attempt=attempt, client=pipe
            )
            origin = {k: v for k, v in _decode(raw).items() if k in _ORIGIN_FIELDS.values()}
            self.dispatcher.enqueue(pipe, session, now_ms=now_ms, attempt=attempt, origin=origin)
            taken = pipe.execute()[0]
        return bool(taken)

    def finish(
        self,
        session_id: str,
        step: int,
        status: SessionStatus,
        outcome: dict[str, Any],
        now_ms: int,
        result: bytes | None = None,
        link: str | None = None,
    ) -> bool:
        """calling -> a final status with its outcome; False if the step had already ended.

        `result` is Belvo's body as it is to be stored (sealed by the caller when keys are configured):
        it goes to mfa:result:{id} in the same script, never into the record or its change log. `link`
        is the link the call registered, noted on the session as an MFA step would have.
        """
        assert status.is_final
        assert outcome.get("result") is None, "the result travels apart from the outcome"
        done = bool(
            self._t.finish(
                SessionKeys.of(session_id),
                **self._common(session_id, now_ms),
                step=step,
                status=status.value,
                outcome=json.dumps(outcome),
                result=result or b"",
                link=link or "",
            )
        )
        if done:
            metrics.session_closed(status.value, outcome.get("code"), phase="calling")
        return done

    def stored_result(self, session_id: str) -> bytes | None:
        """A succeeded session's result as stored (sealed or not), if one was stored."""
        raw = self.redis.get(result_key(session_id))
        return raw if isinstance(raw, bytes) else None

    def next_step(self, session_id: str, step: int, pause: TokenRequired, now_ms: int) -> bool:
        """calling -> awaiting_token for Belvo's (next) MFA step; False if the step had already ended."""
        expires_at = now_ms + pause.expiry_or(self.default_expiry_seconds) * 1000
        challenge = pause.challenge()
        return bool(
            self._t.next_step(
                SessionKeys.of(session_id),
                **self._common(session_id, now_ms),
                step=step,
                belvo_session=pause.session,
                challenge=json.dumps(challenge) if challenge is not None else "",
                expects_input="1" if expects_user_input(challenge) else "0",
                expires_at=expires_at,
                ttl=expires_at - now_ms + self.retention_ms,
                link=str(pause.link),
            )
        )

    def recover_lapsed(self, session_id: str, now_ms: int) -> bool:
        """Close a session whose call's lease lapsed (its worker died); True if it was closed."""
        recovered = bool(
            self._t.recover_lapsed(SessionKeys.of(session_id), **self._common(session_id, now_ms))
        )
        if recovered:
            metrics.lease_recovered()
            metrics.session_closed(SessionStatus.FAILED.value, OUTCOME_UNKNOWN["code"])
        return recovered

    def abort(self, session_id: str, step: int, attempt: int, now_ms: int) -> bool:
        """Close a step whose job for `attempt` raised, if that attempt is still the open one: outcome
        unknown if its call was in flight, else internal_error. True if it closed the step."""
        closed_with = self._t.abort(
            SessionKeys.of(session_id), **self._common(session_id, now_ms), step=step, attempt=attempt
        )
        if closed_with:
            metrics.session_closed(SessionStatus.FAILED.value, STANDARD_OUTCOMES[closed_with]["code"])
        return bool(closed_with)

    def due(self, zset: str, now_ms: int, limit: int = 500) -> list[str]:
        """Ids in the expiry, lease or retry zset whose time has come."""
        return [_text(m) for m in self.redis.zrangebyscore(zset, "-inf", now_ms, start=0, num=limit)]
