"""The transactional outbox (mfa/outbox.py, mfa/outbox.lua) against a real Redis, with no HTTP at all.

Proven here: each transition that makes an event writes it in its own script, and one that is refused
writes none; event ids name one version of one session; the consumer group hands each entry to one
deliverer and lets another take over a dead one's; a due retry is put back once however many sweepers
race; a late attempt never overwrites a newer round; an event added in a caller's transaction exists
exactly when that transaction commits.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from redis import Redis
from rq import Queue

from mfa.dispatch import Dispatcher
from mfa.errors import SessionNotAwaitingToken
from mfa.keys import (
    OUTBOX_GROUP,
    OUTBOX_STREAM,
    WEBHOOK_RETRIES_ZSET,
    webhook_key,
    webhook_payload_key,
)
from mfa.outbox import Outbox, WebhookEvent
from mfa.pause import TokenRequired
from mfa.session import NewSession, SessionStatus
from mfa.store import SessionStore
from mfa.webhooks import DeliveryStatus, event_id

T0 = 1_700_000_000_000
RETENTION_S = 3600
HOOK = "https://backend.example/hooks"
CHALLENGE = {"type": "numeric", "instructions": "Enter the code", "expects_user_input": True}
LINK = "8848bd0c-9c7e-4f53-a732-ec896b11d4c4"


@pytest.fixture
def store(redis: Redis) -> SessionStore:
    dispatcher = Dispatcher(Queue("outbox-tests", connection=redis), 1, 60)
    return SessionStore(redis, RETENTION_S, dispatcher)


@pytest.fixture
def outbox(redis: Redis) -> Outbox:
    box = Outbox(redis, RETENTION_S)
    box.ensure_group()
    return box


def paused(store: SessionStore, belvo: str = "b1", webhooks: tuple[str, ...] = (HOOK,), **extra) -> str:
    new = NewSession(
        status=SessionStatus.AWAITING_TOKEN,
        resource="links",
        secret_hash="h",
        expiry_seconds=600,
        link=LINK,
        belvo_session=belvo,
        challenge=CHALLENGE,
        webhooks=webhooks,
        **extra,
    )
    return store.create(new, T0).id


def events_of(store: SessionStore, outbox: Outbox, session_id: str) -> list[WebhookEvent]:
    return outbox.session_events(session_id, store.get(session_id).version)


def types(store: SessionStore, outbox: Outbox, session_id: str) -> list[tuple[str, int, int]]:
    return [(e.type, e.sequence, e.step) for e in events_of(store, outbox, session_id)]


def test_each_transition_that_tells_the_backend_something_writes_its_event_in_its_own_script(store, outbox):
    sid = paused(store)
    store.submit_token(sid, "999999", T0 + 1)  # submitted: nothing to tell
    assert store.begin_call(sid, 1, T0 + 2, 15_000).verdict.value == "go"
    pause = TokenRequired.model_validate({"session": "b2", "expiry": 600, "link": LINK})
    assert store.next_step(sid, 1, pause, T0 + 3)
    store.submit_token(sid, "111111", T0 + 4)
    store.begin_call(sid, 2, T0 + 5, 15_000)
    result = json.dumps({"id": LINK, "institution": "bank-data"}).encode()  # stored apart, sealed for the web
    assert store.finish(sid, 2, SessionStatus.SUCCEEDED, {"http_status": 201}, T0 + 6, result=result)
    assert types(store, outbox, sid) == [
        ("session.awaiting_token", 1, 1),
        ("session.awaiting_token", 3, 2),
        ("session.succeeded", 5, 2),
    ]
    final = events_of(store, outbox, sid)[-1]
    assert final.id == event_id(sid, 5) and final.destinations == (HOOK,)
    body = json.loads(final.body())
    assert body["data"]["status"] == "succeeded" and body["data"]["outcome"]["http_status"] == 201
    assert body["data"]["outcome"]["result"] is None and b"bank-data" not in final.payload.encode()
    assert final.source == "record" and "secret_hash" not in final.payload and HOOK not in final.payload


def test_a_refused_transition_writes_no_event(store, outbox, redis):
    sid = paused(store)
    store.submit_token(sid, "111111", T0 + 1)
    with pytest.raises(SessionNotAwaitingToken):
        store.cancel(sid, T0 + 2)
    assert types(store, outbox, sid) == [("session.awaiting_token", 1, 1)]
    assert redis.xlen(OUTBOX_STREAM) == 1


def test_expiry_and_cancel_write_their_events(store, outbox):
    cancelled, expired = paused(store, "b1"), paused(store, "b2")
    store.cancel(cancelled, T0 + 1)
    store.expire_due(expired, T0 + 600_000)
    assert types(store, outbox, cancelled)[-1][0] == "session.cancelled"
    assert types(store, outbox, expired)[-1][0] == "session.expired"


def test_a_session_without_destinations_writes_nothing(store, outbox, redis):
    sid = paused(store, webhooks=())
    store.cancel(sid, T0 + 1)
    assert events_of(store, outbox, sid) == [] and redis.xlen(OUTBOX_STREAM) == 0


def test_each_delivery_goes_to_one_deliverer_and_a_dead_one_s_are_taken_over(store, outbox):
    sid = paused(store, webhooks=(HOOK, HOOK + "/2"))
    first = outbox.read("a-0", count=10, block_ms=None)
    assert [(e.event, e.target) for e in first] == [(event_id(sid, 1), 0), (event_id(sid, 1), 1)]
    assert outbox.read("b-0", count=10, block_ms=None) == []  # handed out once
    time.sleep(0.02)
    taken = outbox.claim("b-0", min_idle_ms=10, count=10)  # "a-0" died holding them
    assert taken == first
    assert outbox.claim("c-0", min_idle_ms=60_000, count=10) == []  # a live holder's are left alone


def test_settling_acknowledges_the_entry_and_a_late_attempt_never_overwrites_a_newer_round(
    store, outbox, redis
):
    paused(store)
    [entry] = outbox.read("a-0", count=1, block_ms=None)
    attempt = {"destination": 0, "at": "t", "http_status": 500, "error": None, "duration_ms": 3}
    settled = outbox.settle(
        entry, round=0, outcome=None, due_ms=T0 + 5, attempt=attempt, body="{}", now_ms=T0 + 1
    )
    assert settled == "settled"
    assert redis.xlen(OUTBOX_STREAM) == 0 and redis.xpending(OUTBOX_STREAM, OUTBOX_GROUP)["pending"] == 0
    assert redis.zscore(WEBHOOK_RETRIES_ZSET, f"{entry.event} 0") == T0 + 5
    late = outbox.settle(
        entry, round=0, outcome=DeliveryStatus.FAILED, due_ms=None, attempt=attempt, body="", now_ms=T0 + 2
    )
    assert late == "stale"  # the first attempt already moved the destination on
    event = outbox.load(entry.event)
    assert event is not None and event.states == (DeliveryStatus.PENDING,) and event.rounds == (1,)
    assert len(outbox.attempts([entry.event])[0]) == 2  # both attempts happened: both are logged
    assert event.body() == "{}"  # the bytes first sent are what every later attempt sends


def test_a_due_retry_is_put_back_once_however_many_sweepers_race(store, outbox, redis):
    sid = paused(store)
    [entry] = outbox.read("a-0", count=1, block_ms=None)
    outbox.settle(entry, round=0, outcome=None, due_ms=T0 + 5, attempt={}, body="", now_ms=T0 + 1)
    assert not outbox.promote(f"{entry.event} 0", T0 + 4)  # not due yet
    results: list[bool] = []
    start = threading.Barrier(4)

    def sweep() -> None:
        start.wait()
        results.append(outbox.promote(f"{entry.event} 0", T0 + 5))

    racers = [threading.Thread(target=sweep) for _ in range(4)]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert [(e.event, e.target) for e in outbox.read("a-0", 10, None)] == [(event_id(sid, 1), 0)]


def test_an_event_added_in_a_caller_s_transaction_exists_exactly_when_it_commits(outbox, redis):
    for commit in (False, True):
        with redis.pipeline(transaction=True) as pipe:
            pipe.multi()
            pipe.set("mfa:test:link-record", "token_required")
            outbox.add(
                pipe,
                event=f"evt_link_{commit}",
                event_type="link.reauth_required",
                data={"link": LINK},
                destinations=(HOOK,),
                now_ms=T0,
            )
            if commit:
                pipe.execute()
            else:
                pipe.reset()
        assert (outbox.load(f"evt_link_{commit}") is not None) is commit
    event = outbox.load("evt_link_True")
    assert event is not None and json.loads(event.body())["data"] == {"link": LINK}
    with redis.pipeline(transaction=True) as pipe:  # the same event id again: no second event
        outbox.add(pipe, event="evt_link_True", event_type="x", data={}, destinations=(HOOK,), now_ms=T0 + 1)
        pipe.execute()
    assert redis.xlen(OUTBOX_STREAM) == 1 and outbox.load("evt_link_True").type == "link.reauth_required"


def test_consumers_gone_for_good_are_forgotten_but_never_one_holding_entries(store, outbox, redis):
    paused(store, "b1")
    paused(store, "b2")
    outbox.read("holder-0", count=1, block_ms=None)
    outbox.ack(outbox.read("idle-0", count=1, block_ms=None)[0])  # it settled all it took
    time.sleep(0.01)
    assert outbox.forget_consumers(idle_ms=1, now_ms=T0) == 1
    assert [c["name"] for c in redis.xinfo_consumers(OUTBOX_STREAM, OUTBOX_GROUP)] == [b"holder-0"]


def test_events_expire_with_the_retention_once_settled(store, outbox, redis):
    sid = paused(store)
    key = webhook_key(event_id(sid, 1))
    assert redis.pttl(key) > RETENTION_S * 1000  # unsettled: kept through a long absence of workers
    [entry] = outbox.read("a-0", count=1, block_ms=None)
    outbox.settle(
        entry, round=0, outcome=DeliveryStatus.DELIVERED, due_ms=None, attempt={}, body="", now_ms=T0 + 1
    )
    assert 0 < redis.pttl(key) <= RETENTION_S * 1000
    assert 0 < redis.pttl(webhook_payload_key(event_id(sid, 1))) <= RETENTION_S * 1000  # all its keys


def test_an_expired_event_is_acknowledged_and_dropped(outbox, redis, store):
    paused(store)
    [entry] = outbox.read("a-0", count=1, block_ms=None)
    redis.delete(webhook_key(entry.event))
    assert outbox.settle(entry, round=0, outcome=None, due_ms=1, attempt={}, body="", now_ms=T0) == "gone"
    assert redis.xlen(OUTBOX_STREAM) == 0
