"""The session state machine in mfa/store.py against a real Redis; time is driven through `now_ms`.

The sessions here live in 2023 (T0): nothing else runs against the fast tier's Redis, so no sweeper
with the real clock expires them mid-test. Jobs go to RQ's real queue through the store's Dispatcher.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
from redis import Redis
from redis.client import Pipeline
from rq import Queue

from devstack.processes import wait_for
from mfa.clock import now_ms
from mfa.dispatch import Dispatcher
from mfa.errors import DuplicateSession, SessionExpired, SessionNotAwaitingToken
from mfa.keys import (
    CHANGES_CHANNEL,
    EXPIRY_ZSET,
    LEASES_ZSET,
    RETRIES_ZSET,
    belvo_key,
    creds_key,
    events_key,
    result_key,
    session_key,
    token_key,
)
from mfa.pause import TokenRequired
from mfa.session import ClaimVerdict, MfaSession, NewSession, SessionStatus
from mfa.store import TOKEN_GRACE_MS, SessionStore

T0 = 1_700_000_000_000
EXPIRY_MS = 600_000
EXPIRES_AT = T0 + EXPIRY_MS
RETENTION_MS = 3_600_000
LEASE_MS = 15_000
DEADLINE_MS = 900_000
SUBMITTED_AT = T0 + 1_000
CALLED_AT = T0 + 2_000
LINK = "8848bd0c-9c7e-4f53-a732-ec896b11d4c4"
CHALLENGE = {"type": "numeric", "instructions": "Enter the code", "expects_user_input": True}
QR_CHALLENGE = {"type": "qr_code", "value": "qr-data", "expects_user_input": True}
QR_STORED = {"instructions": None, **QR_CHALLENGE}  # as Belvo's 428 is read: every known field named
REQUEST = {"institution": "heimdall_mx_retail", "access_mode": "single"}
SEALED = b"gAAAAA-sealed-bank-credentials"


class Hooked(Dispatcher):
    """The real Dispatcher (RQ's queue), with a hook that sees the transaction the job joins."""

    def __init__(self, queue: Queue, hook: Callable[[Pipeline, MfaSession, int], None] | None = None) -> None:
        super().__init__(queue, upstream_timeout_seconds=1, failure_ttl_seconds=60)
        object.__setattr__(self, "hook", hook)

    def enqueue(
        self, pipe: Pipeline, session: MfaSession, *, now_ms: int, attempt: int = 1, **kw: Any
    ) -> None:
        super().enqueue(pipe, session, now_ms=now_ms, attempt=attempt, **kw)
        if self.hook is not None:
            self.hook(pipe, session, attempt)


@pytest.fixture
def queue(redis: Redis) -> Queue:
    return Queue("belvo-resume", connection=redis)


@pytest.fixture
def store(redis: Redis, queue: Queue) -> SessionStore:
    return SessionStore(redis, RETENTION_MS // 1000, Hooked(queue))


def hooked(store: SessionStore, hook: Callable[[Pipeline, MfaSession, int], None]) -> SessionStore:
    """The same store, its Dispatcher calling `hook` inside each transaction that enqueues."""
    return SessionStore(store.redis, RETENTION_MS // 1000, Hooked(store.dispatcher.queue, hook))


def create(store: SessionStore, belvo_session: str = "belvo-1", challenge: Any = CHALLENGE) -> MfaSession:
    """A session paused on a 428 the backend got: awaiting_token at T0."""
    new = NewSession(
        status=SessionStatus.AWAITING_TOKEN,
        resource="links",
        secret_hash="secret-hash",
        expiry_seconds=EXPIRY_MS // 1000,
        link=LINK,
        external_ref="order-42",
        belvo_session=belvo_session,
        challenge=challenge,
    )
    return store.create(new, T0)


def call_pending(store: SessionStore, status: SessionStatus) -> MfaSession:
    """A session whose first call (register or retrieve) is still to make, created at T0."""
    new = NewSession(
        status=status,
        resource="links",
        secret_hash="secret-hash",
        expiry_seconds=DEADLINE_MS // 1000,
        request=REQUEST,
        sealed_credentials=SEALED,
    )
    return store.create(new, T0)


def submitted(store: SessionStore, token: str = "111111", belvo_session: str = "belvo-1") -> MfaSession:
    session = create(store, belvo_session)
    store.submit_token(session.id, token, SUBMITTED_AT)
    return session


def in_call(store: SessionStore, belvo_session: str = "belvo-1") -> MfaSession:
    session = submitted(store, belvo_session=belvo_session)
    assert store.begin_call(session.id, 1, CALLED_AT, LEASE_MS).verdict is ClaimVerdict.GO
    return session


def next_step(store: SessionStore, session_id: str, step: int, belvo_session: str, now: int) -> bool:
    """Belvo's 428 to the step's call: a new Belvo session, a QR challenge, 60 s to answer."""
    pause = TokenRequired.model_validate(
        {"session": belvo_session, "link": LINK, "expiry": 60, "token_generation_data": QR_CHALLENGE}
    )
    return store.next_step(session_id, step, pause, now)


def assert_pttl(redis: Redis, key: str, expected_ms: int) -> None:
    assert expected_ms - 5_000 < redis.pttl(key) <= expected_ms


def assert_awaiting(
    store: SessionStore, session_id: str, step: int, belvo: str, now: int, expiry_ms: int, challenge: Any
) -> None:
    """Open for a token: listed for expiry, no call or secret held, indexed by its Belvo session."""
    stored, redis = store.get(session_id), store.redis
    assert (stored.status, stored.step, stored.belvo_session) == (SessionStatus.AWAITING_TOKEN, step, belvo)
    assert (stored.expires_at_ms, stored.attempts, stored.in_flight) == (now + expiry_ms, 0, False)
    assert (stored.link, stored.challenge, stored.outcome) == (LINK, challenge, None)
    assert not redis.exists(token_key(session_id), creds_key(session_id))
    assert redis.zscore(EXPIRY_ZSET, session_id) == now + expiry_ms
    assert redis.zscore(LEASES_ZSET, session_id) is None
    assert redis.get(belvo_key(belvo)) == session_id.encode()
    assert_pttl(redis, session_key(session_id), expiry_ms + RETENTION_MS)


def assert_closed(store: SessionStore, session_id: str, status: SessionStatus, code: str | None) -> None:
    """A final status with its outcome, no secret held, off both work lists, kept for retention."""
    stored, redis = store.get(session_id), store.redis
    assert (stored.status, stored.outcome["code"], stored.in_flight) == (status, code, False)
    assert not redis.exists(token_key(session_id), creds_key(session_id))
    assert redis.zscore(EXPIRY_ZSET, session_id) is None
    assert redis.zscore(LEASES_ZSET, session_id) is None
    assert_pttl(redis, session_key(session_id), RETENTION_MS)


def test_create_stores_an_awaiting_session_at_step_1(store):
    session = create(store)
    assert store.get(session.id) == session and session.id.startswith("mfa_")
    assert (session.external_ref, session.secret_hash, session.expects_user_input) == (
        "order-42",
        "secret-hash",
        True,
    )
    assert_awaiting(store, session.id, 1, "belvo-1", T0, EXPIRY_MS, CHALLENGE)


def test_create_refuses_a_second_session_for_one_belvo_session(store, redis):
    first = create(store)
    with pytest.raises(DuplicateSession):
        create(store)
    assert [k.decode() for k in redis.scan_iter("mfa:session:*")] == [session_key(first.id)]


def test_create_calling_writes_the_session_its_credentials_and_its_job_at_once(store, redis, queue):
    seen: list[tuple[MfaSession, bool, int, int]] = []

    def hook(pipe: Pipeline, session: MfaSession, attempt: int) -> None:
        seen.append((session, pipe.explicit_transaction, redis.exists(session_key(session.id)), queue.count))

    session = call_pending(hooked(store, hook), SessionStatus.REGISTERING)
    # RQ's enqueue joins a MULTI already begun: the record and its job are committed together.
    assert seen == [(session, True, 0, 0)]
    assert queue.job_ids == [f"register_link-{session.id}-s1-a1"]
    assert store.get(session.id) == session
    assert (session.status, session.step, session.belvo_session) == (SessionStatus.REGISTERING, 1, None)
    assert (session.request, store.sealed_credentials(session.id)) == (REQUEST, SEALED)
    assert redis.zscore(EXPIRY_ZSET, session.id) == T0 + DEADLINE_MS
    assert_pttl(redis, creds_key(session.id), DEADLINE_MS)
    assert_pttl(redis, session_key(session.id), DEADLINE_MS + RETENTION_MS)


def test_a_first_call_not_made_by_its_deadline_expires_and_forgets_the_credentials(store):
    session = call_pending(store, SessionStatus.RETRIEVING)
    assert store.expire_due(session.id, T0 + DEADLINE_MS - 1) == "retrieving"
    assert store.expire_due(session.id, T0 + DEADLINE_MS) == "expired"
    assert_closed(store, session.id, SessionStatus.EXPIRED, "session_expired")


def test_a_428_to_the_first_call_opens_step_1_and_forgets_the_credentials(store):
    session = call_pending(store, SessionStatus.REGISTERING)
    claim = store.begin_call(session.id, 1, CALLED_AT, LEASE_MS)
    assert (claim.verdict, claim.token, claim.attempt) == (ClaimVerdict.GO, None, 1)
    assert next_step(store, session.id, 1, "belvo-1", CALLED_AT)
    assert_awaiting(store, session.id, 1, "belvo-1", CALLED_AT, 60_000, QR_STORED)


def test_submit_token_stores_the_token_until_expiry(store, redis):
    session = create(store)
    result = store.submit_token(session.id, "111111", SUBMITTED_AT)
    assert result.status is SessionStatus.SUBMITTED
    assert store.get(session.id).status is SessionStatus.SUBMITTED
    assert redis.get(token_key(session.id)) == b"111111"
    assert_pttl(redis, token_key(session.id), EXPIRES_AT - SUBMITTED_AT + TOKEN_GRACE_MS)


def test_submit_token_commits_the_resume_job_in_one_transaction(store, redis, queue):
    session = create(store)
    seen: list[tuple[MfaSession, bool, int, int]] = []

    def hook(pipe: Pipeline, submitted: MfaSession, attempt: int) -> None:
        seen.append((submitted, pipe.explicit_transaction, queue.count, redis.exists(token_key(session.id))))

    hooked(store, hook).submit_token(session.id, "111111", SUBMITTED_AT)
    [(passed, in_multi, queued_before_commit, token_before_commit)] = seen
    assert (passed.id, passed.status) == (session.id, SessionStatus.SUBMITTED)
    assert in_multi  # RQ's enqueue joins a MULTI already begun instead of opening its own
    assert (queued_before_commit, token_before_commit) == (0, 0)  # queued in the transaction, not run alone
    assert queue.job_ids == [f"resume_session-{session.id}-s1-a1"]
    assert redis.get(token_key(session.id)) == b"111111"


def test_submit_token_commits_nothing_when_enqueue_fails(store, redis, queue):
    session = create(store)

    def hook(pipe: Pipeline, submitted: MfaSession, attempt: int) -> None:
        raise RuntimeError("queue refused")

    with pytest.raises(RuntimeError):
        hooked(store, hook).submit_token(session.id, "111111", SUBMITTED_AT)
    assert store.get(session.id).status is SessionStatus.AWAITING_TOKEN
    assert not redis.exists(token_key(session.id)) and queue.count == 0


def test_a_second_submit_is_refused_and_keeps_the_first_token(store, redis):
    session = submitted(store, "111111")
    with pytest.raises(SessionNotAwaitingToken) as refused:
        store.submit_token(session.id, "999999", SUBMITTED_AT + 1)
    assert refused.value.status is SessionStatus.SUBMITTED
    assert redis.get(token_key(session.id)) == b"111111"


def test_submit_past_expiry_raises_and_expires_the_session(store, queue):
    session = create(store)
    with pytest.raises(SessionExpired):
        store.submit_token(session.id, "111111", EXPIRES_AT)
    assert queue.count == 0
    assert_closed(store, session.id, SessionStatus.EXPIRED, "session_expired")


def test_of_twenty_concurrent_submits_exactly_one_commits(store, redis, queue):
    session = create(store)
    start = threading.Barrier(20)

    def submit(i: int) -> str:
        start.wait()
        try:
            store.submit_token(session.id, f"{i:06d}", SUBMITTED_AT)
        except SessionNotAwaitingToken:
            return "refused"
        return f"{i:06d}"

    with ThreadPoolExecutor(max_workers=20) as pool:
        winners = [r for r in pool.map(submit, range(20)) if r != "refused"]
    assert len(winners) == 1
    assert queue.count == 1
    assert redis.get(token_key(session.id)) == winners[0].encode()


def test_no_token_is_stored_when_the_challenge_expects_no_input(store, redis):
    session = create(store, challenge={"type": "qr", "value": "qr-data", "expects_user_input": False})
    store.submit_token(session.id, "111111", SUBMITTED_AT)
    assert store.get(session.id).status is SessionStatus.SUBMITTED
    assert not redis.exists(token_key(session.id))
    claim = store.begin_call(session.id, 1, CALLED_AT, LEASE_MS)
    assert (claim.verdict, claim.token, claim.attempt) == (ClaimVerdict.GO, None, 1)


def test_cancel_closes_an_awaiting_session(store):
    session = create(store)
    assert store.cancel(session.id, SUBMITTED_AT).status is SessionStatus.CANCELLED
    assert_closed(store, session.id, SessionStatus.CANCELLED, "cancelled")


@pytest.mark.parametrize(
    ("submit", "now", "status"),
    [(True, CALLED_AT, SessionStatus.SUBMITTED), (False, EXPIRES_AT, SessionStatus.EXPIRED)],
    ids=["after-submit", "past-expiry"],
)
def test_cancel_is_refused_unless_awaiting_before_expiry(store, submit, now, status):
    session = submitted(store) if submit else create(store)
    with pytest.raises(SessionNotAwaitingToken) as refused:
        store.cancel(session.id, now)
    assert refused.value.status is status
    assert store.get(session.id).status is status


def test_expire_due_expires_an_awaiting_session_past_expiry(store):
    session = create(store)
    assert store.due(EXPIRY_ZSET, EXPIRES_AT) == [session.id]
    assert store.expire_due(session.id, EXPIRES_AT) == "expired"
    assert_closed(store, session.id, SessionStatus.EXPIRED, "session_expired")


def test_expire_due_leaves_sessions_not_due_unchanged(store, redis):
    waiting = create(store, belvo_session="belvo-waiting")
    mid_call = in_call(store)
    assert store.expire_due(waiting.id, EXPIRES_AT - 1) == "awaiting_token"
    assert store.expire_due(mid_call.id, EXPIRES_AT + 1) == "submitted"  # a call in flight ends by itself
    assert store.get(waiting.id) == waiting and redis.zscore(EXPIRY_ZSET, waiting.id) == EXPIRES_AT
    assert store.get(mid_call.id).status is SessionStatus.SUBMITTED and store.get(mid_call.id).in_flight


@pytest.mark.parametrize(
    ("calls", "status", "code"),
    [(0, SessionStatus.EXPIRED, "session_expired"), (1, SessionStatus.FAILED, "upstream_unavailable")],
)
def test_expire_due_closes_a_submitted_session_between_calls(store, calls, status, code):
    session = submitted(store)
    for _ in range(calls):
        assert store.begin_call(session.id, 1, CALLED_AT, LEASE_MS).verdict == "go"
        assert store.release_call(session.id, 1, CALLED_AT + 1, CALLED_AT + 2, uncertain=False)
    assert store.expire_due(session.id, EXPIRES_AT) == status.value
    assert_closed(store, session.id, status, code)


def test_begin_call_hands_out_the_token_under_a_lease(store, redis):
    session = submitted(store)
    claim = store.begin_call(session.id, 1, CALLED_AT, LEASE_MS)
    assert (claim.verdict, claim.token, claim.attempt) == (ClaimVerdict.GO, b"111111", 1)
    assert claim.session is not None and claim.session.in_flight
    assert redis.zscore(LEASES_ZSET, session.id) == CALLED_AT + LEASE_MS


def test_begin_call_is_busy_while_the_lease_lives_and_unknown_once_it_lapsed(store):
    session = in_call(store)
    assert store.begin_call(session.id, 1, CALLED_AT + LEASE_MS - 1, LEASE_MS).verdict == "busy"
    assert store.get(session.id).attempts == 1
    assert store.begin_call(session.id, 1, CALLED_AT + LEASE_MS, LEASE_MS).verdict == "unknown"
    assert_closed(store, session.id, SessionStatus.FAILED, "upstream_outcome_unknown")


def test_begin_call_for_another_step_or_status_is_stale(store):
    awaiting = create(store, belvo_session="belvo-awaiting")
    session = submitted(store)
    assert store.begin_call(session.id, 2, CALLED_AT, LEASE_MS).verdict == "stale"
    assert store.begin_call(awaiting.id, 1, CALLED_AT, LEASE_MS).verdict == "stale"
    assert store.begin_call("mfa_missing", 1, CALLED_AT, LEASE_MS).verdict == "gone"
    assert store.get(session.id).attempts == 0 and not store.get(session.id).in_flight


def test_begin_call_past_expiry_expires_the_session(store):
    session = submitted(store)
    assert store.begin_call(session.id, 1, EXPIRES_AT, LEASE_MS).verdict == "expired"
    assert_closed(store, session.id, SessionStatus.EXPIRED, "session_expired")


def test_release_call_lists_the_retry_and_only_its_attempt_may_call(store, redis):
    session = in_call(store)
    retry_at = CALLED_AT + 1000
    assert store.release_call(session.id, 1, CALLED_AT + 1, retry_at, uncertain=True)
    record = store.get(session.id)
    assert not record.in_flight and record.uncertain == 1
    assert redis.zscore(LEASES_ZSET, session.id) is None
    assert redis.zscore(RETRIES_ZSET, session.id) == retry_at
    assert not store.release_call(session.id, 1, CALLED_AT + 2, retry_at, uncertain=False)
    # While the retry is listed no job may call, not even the one for the next attempt.
    assert store.begin_call(session.id, 1, CALLED_AT + 3, LEASE_MS, attempt=2).verdict == "stale"


def test_promote_retry_enqueues_once_when_due_and_duplicates_are_stale(store, redis, queue):
    session = in_call(store)
    retry_at = CALLED_AT + 1000
    store.release_call(session.id, 1, CALLED_AT + 1, retry_at, uncertain=False)
    queue.empty()
    enqueued: list[tuple[int, bool]] = []
    retrying = hooked(store, lambda pipe, s, attempt: enqueued.append((attempt, pipe.explicit_transaction)))

    assert not retrying.promote_retry(session.id, retry_at - 1)  # not due: the job is a no-op
    assert redis.zscore(RETRIES_ZSET, session.id) == retry_at
    assert store.begin_call(session.id, 1, retry_at - 1, LEASE_MS, attempt=2).verdict == "stale"
    assert retrying.promote_retry(session.id, retry_at)
    assert redis.zscore(RETRIES_ZSET, session.id) is None
    assert enqueued == [(2, True), (2, True)]  # in the same MULTI, both times
    assert queue.job_ids == [f"resume_session-{session.id}-s1-a2"] * 2  # the same attempt's job, twice
    assert store.begin_call(session.id, 1, retry_at, LEASE_MS, attempt=1).verdict == "stale"
    claim = store.begin_call(session.id, 1, retry_at, LEASE_MS, attempt=2)
    assert (claim.verdict, claim.token, claim.attempt) == (ClaimVerdict.GO, b"111111", 2)
    assert store.begin_call(session.id, 1, retry_at, LEASE_MS, attempt=2).verdict == "busy"


def test_finish_closes_the_step_with_its_outcome(store, redis):
    session = in_call(store)
    outcome = {"http_status": 201, "code": None}
    assert store.finish(session.id, 1, SessionStatus.SUCCEEDED, outcome, CALLED_AT + 1, result=b"sealed-body")
    assert store.get(session.id).outcome == outcome
    assert_closed(store, session.id, SessionStatus.SUCCEEDED, None)
    assert_pttl(redis, belvo_key("belvo-1"), RETENTION_MS)
    # The result has a key of its own, kept as long as the record, and is in no change-log entry.
    assert store.stored_result(session.id) == b"sealed-body"
    assert_pttl(redis, result_key(session.id), RETENTION_MS)
    logged = [v for _, fields in redis.xrange(events_key(session.id)) for v in fields.values()]
    assert logged and not any(b"sealed-body" in v for v in logged)


def test_finishing_twice_or_another_step_returns_false(store):
    session = in_call(store)
    assert not store.finish(session.id, 2, SessionStatus.FAILED, {"code": "x"}, CALLED_AT + 1)
    assert store.finish(session.id, 1, SessionStatus.FAILED, {"code": "first"}, CALLED_AT + 1)
    assert not store.finish(session.id, 1, SessionStatus.SUCCEEDED, {"code": "second"}, CALLED_AT + 2)
    assert store.get(session.id).outcome == {"code": "first"}


def test_a_428_without_expiry_is_held_for_the_stores_default(redis, queue):
    store = SessionStore(redis, RETENTION_MS // 1000, Hooked(queue), default_expiry_seconds=90)
    session = call_pending(store, SessionStatus.REGISTERING)
    store.begin_call(session.id, 1, CALLED_AT, LEASE_MS)
    pause = TokenRequired.model_validate({"session": "belvo-1", "link": LINK})
    assert store.next_step(session.id, 1, pause, CALLED_AT)
    assert store.get(session.id).expires_at_ms == CALLED_AT + 90_000


def test_finish_notes_the_registered_link_on_the_session(store):
    session = call_pending(store, SessionStatus.REGISTERING)
    assert store.get(session.id).link is None
    store.begin_call(session.id, 1, CALLED_AT, LEASE_MS)
    assert store.finish(
        session.id, 1, SessionStatus.SUCCEEDED, {"http_status": 201}, CALLED_AT + 1, link=LINK
    )
    assert store.get(session.id).link == LINK
    other = in_call(store)  # without `link`, the session keeps the link it had
    assert store.finish(other.id, 1, SessionStatus.FAILED, {"code": "x"}, CALLED_AT + 1)
    assert store.get(other.id).link == other.link


def test_a_session_can_be_created_under_an_id_its_caller_made(store):
    new = NewSession(
        status=SessionStatus.UPDATING,
        resource="links",
        secret_hash="secret-hash",
        expiry_seconds=60,
        link=LINK,
        sealed_credentials=SEALED,
        id="mfa_" + "c" * 32,
    )
    session = store.create(new, T0)
    assert session.id == "mfa_" + "c" * 32 and store.get(session.id).status is SessionStatus.UPDATING
    assert store.sealed_credentials(session.id) == SEALED


def test_next_step_reopens_the_session_at_step_2(store):
    session = in_call(store)
    assert next_step(store, session.id, 1, "belvo-2", CALLED_AT + 1)
    assert_awaiting(store, session.id, 2, "belvo-2", CALLED_AT + 1, 60_000, QR_STORED)
    assert store.submit_token(session.id, "222222", CALLED_AT + 2).step == 2
    assert not next_step(store, session.id, 1, "belvo-3", CALLED_AT + 3)


def test_recover_lapsed_closes_a_call_only_once_its_lease_lapsed(store):
    session = in_call(store)
    assert not store.recover_lapsed(session.id, CALLED_AT + LEASE_MS - 1)
    assert store.get(session.id).in_flight
    assert store.recover_lapsed(session.id, CALLED_AT + LEASE_MS)
    assert_closed(store, session.id, SessionStatus.FAILED, "upstream_outcome_unknown")


@pytest.mark.parametrize(
    ("mid_call", "code"), [(True, "upstream_outcome_unknown"), (False, "internal_error")]
)
def test_abort_fails_the_step(store, mid_call, code):
    session = in_call(store) if mid_call else submitted(store)
    assert not store.abort(session.id, 2, 1, CALLED_AT + 1)
    assert store.abort(session.id, 1, 1, CALLED_AT + 1)
    assert_closed(store, session.id, SessionStatus.FAILED, code)
    assert not store.abort(session.id, 1, 1, CALLED_AT + 2)


def test_abort_by_the_job_of_another_attempt_leaves_the_step_open(store):
    session = in_call(store)
    retry_at = CALLED_AT + 1000
    store.release_call(session.id, 1, CALLED_AT + 1, retry_at, uncertain=False)
    # Attempt 1's job raised after its call was released for a retry (RQ's bookkeeping, say).
    assert not store.abort(session.id, 1, 1, CALLED_AT + 2)
    assert store.promote_retry(session.id, retry_at)
    assert store.begin_call(session.id, 1, retry_at, LEASE_MS, attempt=2).verdict == "go"
    # A late failure callback of attempt 1 (RQ's maintenance) never closes attempt 2 in flight.
    assert not store.abort(session.id, 1, 1, retry_at + 1)
    assert store.get(session.id).in_flight
    assert store.abort(session.id, 1, 2, retry_at + 1)
    assert_closed(store, session.id, SessionStatus.FAILED, "upstream_outcome_unknown")


def test_extend_leases_pushes_every_live_lease_in_one_command_and_revives_none(store, redis):
    calls = [in_call(store, belvo_session=f"belvo-{n}") for n in range(3)]
    closed = calls.pop()
    assert store.finish(closed.id, 1, SessionStatus.SUCCEEDED, {"code": None}, CALLED_AT + 1)
    redis.config_resetstat()
    store.extend_leases([c.id for c in calls] + [closed.id], CALLED_AT + 5, LEASE_MS)
    assert redis.info("commandstats")["cmdstat_zadd"]["calls"] == 1
    assert [redis.zscore(LEASES_ZSET, c.id) for c in calls] == [CALLED_AT + 5 + LEASE_MS] * 2
    assert redis.zscore(LEASES_ZSET, closed.id) is None


def test_a_stale_read_passed_to_submit_is_checked_under_watch(store, redis):
    session = create(store)
    seen = store.get(session.id)  # what a request read before another request's submit committed
    store.submit_token(session.id, "111111", SUBMITTED_AT, seen=seen)
    with pytest.raises(SessionNotAwaitingToken):
        store.submit_token(session.id, "999999", SUBMITTED_AT + 1, seen=seen)
    assert redis.get(token_key(session.id)) == b"111111"


def test_every_change_a_reader_sees_bumps_the_version(store):
    session = create(store)
    assert session.version == store.get(session.id).version == 1
    assert store.submit_token(session.id, "999999", SUBMITTED_AT).version == 2
    assert store.get(session.id).version == 2
    store.begin_call(session.id, 1, CALLED_AT, LEASE_MS)
    assert store.get(session.id).version == 2  # the lease is the worker's business
    next_step(store, session.id, 1, "belvo-2", CALLED_AT + 1)
    assert store.get(session.id).version == 3
    store.cancel(session.id, CALLED_AT + 2)
    assert store.get(session.id).version == 4


def test_a_last_moment_claim_never_finds_the_token_gone(store):
    now = now_ms()
    new = NewSession(
        status=SessionStatus.AWAITING_TOKEN,
        resource="links",
        secret_hash="unused",
        expiry_seconds=1,
        link=LINK,
        belvo_session="belvo-last-moment",
    )
    session = store.create(new, now)
    store.submit_token(session.id, "111111", now)
    expires_at = session.expires_at_ms or 0
    # Redis's own clock (the token's TTL) passes expires_at...
    wait_for(lambda: now_ms() > expires_at + 50, 3, "expires_at to pass")
    # ...while the job read its clock 1 ms before expires_at and runs its claim only now.
    claim = store.begin_call(session.id, 1, expires_at - 1, lease_ms=2000)
    assert not (claim.verdict is ClaimVerdict.GO and claim.token is None), claim


def test_every_change_after_creation_is_logged_with_its_version_and_announced(store, redis):
    changes = redis.pubsub(ignore_subscribe_messages=True)
    changes.subscribe(CHANGES_CHANNEL)
    session = create(store)
    assert store.events_after(session.id, 0) == []  # creation is the record itself
    store.submit_token(session.id, "999999", SUBMITTED_AT)
    store.begin_call(session.id, 1, CALLED_AT, LEASE_MS)
    next_step(store, session.id, 1, "belvo-2", CALLED_AT + 1)
    store.submit_token(session.id, "111111", CALLED_AT + 2)
    store.begin_call(session.id, 2, CALLED_AT + 3, LEASE_MS)
    store.finish(session.id, 2, SessionStatus.SUCCEEDED, {"http_status": 200}, CALLED_AT + 4)
    logged = store.events_after(session.id, 0)
    assert [(s.version, s.status, s.step) for s in logged] == [
        (2, SessionStatus.SUBMITTED, 1),
        (3, SessionStatus.AWAITING_TOKEN, 2),
        (4, SessionStatus.SUBMITTED, 2),
        (5, SessionStatus.SUCCEEDED, 2),
    ]
    assert logged[-1] == replace(store.get(session.id), secret_hash="")  # the record, minus the secret's hash
    assert [s.version for s in store.events_after(session.id, 3)] == [4, 5]
    assert redis.pttl(events_key(session.id)) == pytest.approx(redis.pttl(session_key(session.id)), abs=50)
    announced: list[bytes] = []
    deadline = time.monotonic() + 5
    while len(announced) < 4 and time.monotonic() < deadline:  # get_message answers None for the
        message = changes.get_message(timeout=1)  # subscription's own confirmation too
        if message is not None:
            announced.append(message["data"])
    assert announced == [f"{session.id} {v}".encode() for v in (2, 3, 4, 5)]
    changes.close()
