"""CallLeases: one keeper for every call in flight in a process, and the sweeper that spares them."""

from __future__ import annotations

import contextlib
import threading

import pytest

from devstack.processes import wait_for
from mfa.clock import now_ms
from mfa.keys import LEASES_ZSET
from mfa.leases import CallLeases
from mfa.session import ClaimVerdict
from mfa.settings import Settings
from mfa.store import SessionStore
from worker.sweeper import sweep_once

LEASE_MS = 2000


@pytest.fixture
def store(service_env, redis) -> SessionStore:
    return SessionStore.for_settings(Settings.from_env(service_env), redis)


def in_flight(api, sandbox, store: SessionStore, count: int, at: int) -> list[str]:
    """`count` sessions submitted through the API, each call claimed at `at` under a LEASE_MS lease."""
    ids = []
    for _ in range(count):
        s = api.created(sandbox.pause())
        assert api.submit(s["id"], credential=s["client_secret"]).status_code == 202
        assert store.begin_call(s["id"], 1, at, LEASE_MS).verdict is ClaimVerdict.GO
        ids.append(s["id"])
    return ids


def test_one_beat_renews_every_held_lease_in_one_command_with_no_thread_per_call(api, sandbox, store, redis):
    t0 = now_ms()
    ids = in_flight(api, sandbox, store, 30, t0)
    leases = CallLeases(store, LEASE_MS, hold_ms=60_000)
    threads = threading.active_count()
    with contextlib.ExitStack() as rest:
        for sid in ids[2:]:
            rest.enter_context(leases.hold(sid))
        with leases.hold(ids[0]), leases.hold(ids[1]):
            assert threading.active_count() == threads, "holding a call starts no thread"
            redis.config_resetstat()
            assert leases.beat(t0 + 1000) == 30
            assert redis.info("commandstats")["cmdstat_zadd"]["calls"] == 1
            assert {redis.zscore(LEASES_ZSET, sid) for sid in ids} == {t0 + 1000 + LEASE_MS}
        assert leases.beat(t0 + 1500) == 28, "a call whose block ended is no longer held"
        assert redis.zscore(LEASES_ZSET, ids[0]) == t0 + 1000 + LEASE_MS


def test_a_hold_past_its_deadline_is_neither_renewed_nor_spared(api, sandbox, store, redis):
    t0 = now_ms()
    [sid] = in_flight(api, sandbox, store, 1, t0)
    leases = CallLeases(store, LEASE_MS, hold_ms=1000)
    with leases.hold(sid) as deadline:
        assert leases.live(deadline - 1) == {sid}
        assert leases.live(deadline) == frozenset()
        assert leases.beat(deadline) == 0
        assert redis.zscore(LEASES_ZSET, sid) == t0 + LEASE_MS


def test_a_sweeper_spares_the_calls_its_own_process_still_makes(api, sandbox, store):
    t0 = now_ms() - 2 * LEASE_MS  # both leases have lapsed, as in a Redis outage
    mine, dead = in_flight(api, sandbox, store, 2, t0)
    assert sweep_once(store, now_ms(), held={mine}) == (0, 1, 0)
    assert store.get(dead).status.value == "failed"
    assert store.get(mine).status.value == "submitted" and store.get(mine).in_flight
    assert sweep_once(store, now_ms()) == (0, 1, 0), "another process's sweeper closes it"


def test_the_keeper_beats_every_third_of_a_lease_until_stopped(api, sandbox, store, redis):
    lease_ms = 300
    [sid] = in_flight(api, sandbox, store, 1, now_ms())
    claimed = redis.zscore(LEASES_ZSET, sid)
    leases = CallLeases(store, lease_ms, hold_ms=60_000)
    seen: list[float] = []

    def renewed_twice() -> bool:
        score = redis.zscore(LEASES_ZSET, sid)
        if score != claimed and score not in seen:
            seen.append(score)
        return len(seen) >= 2

    leases.start()
    try:
        with leases.hold(sid):
            wait_for(renewed_twice, 5, "two beats")
    finally:
        leases.stop()
    assert seen == sorted(seen)
