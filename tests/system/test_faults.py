"""Fault tolerance on stacks of our own: what survives crashes, stops, outages and a misbehaving Belvo.

Proven here:
- a worker host killed mid-PATCH (the worker and anything it forked SIGKILLed) leaves no session stuck in
  `submitted`: once any worker runs, its sweeper records `failed`/`upstream_outcome_unknown` within
  the lease, and the PATCH is never repeated; nothing it held delays the other workers' retries;
- SIGTERM to the worker is a warm shutdown: the job in hand is recorded, then the worker exits 0;
- a Redis crash answers 503 `store_unavailable` (never 500) while /healthz stays up; web and worker
  reconnect by themselves once Redis is back (even when the outage caught the worker mid-job), retries
  run promptly after it, and the AOF keeps every session;
- an answer lost on the wire after Belvo acted is never recorded as Belvo's rejection;
- Retry-After is honoured to the millisecond: a retry is never due before it;
- a slow Belvo, an HTML 5xx page or a persistent 5xx end each session as the outcome rules say, no
  later than its expiry, with no PATCH after it;
- expiry is swept from the expiry zset (no key scans), durably, and the record is forgotten after
  SESSION_RETENTION_SECONDS.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.processes import wait_for
from mfa.keys import EXPIRY_ZSET, LEASES_ZSET, RETRIES_ZSET, belvo_key, session_key, token_key
from tests.stack import Stack, build_stack, descendants, epoch, patches, wait_status
from tests.support import BELVO_SECRET_ID, BELVO_SECRET_PASSWORD, FINAL, Sandbox, first

pytestmark = pytest.mark.slow

LEASE = 2.0  # LEASE_SECONDS of every stack here
TIMEOUT = 2.0  # UPSTREAM_TIMEOUT_SECONDS of the module stack
RETENTION = 2.0  # SESSION_RETENTION_SECONDS of the module stack
LONG_OUTAGE = 7.0  # outlasts redis-py's own retries (10 tries, backoff capped at 1 s)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "RESUME_MAX_ATTEMPTS": "10",
        "SESSION_RETENTION_SECONDS": str(int(RETENTION)),
        "UPSTREAM_TIMEOUT_SECONDS": str(int(TIMEOUT)),
    }
    with build_stack(tmp_path_factory.mktemp("faults"), env, workers=1) as st:
        yield st


@pytest.fixture
def sb(stack: Stack) -> Sandbox:
    stack.sandbox.reset()
    return stack.sandbox


@pytest.fixture
def crash_stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack per test, for tests that kill or stop its processes; no worker until the test starts one."""
    with build_stack(tmp_path, {"UPSTREAM_TIMEOUT_SECONDS": "10"}) as st:
        yield st


def _patch_in_flight(stack: Stack, belvo_session: str) -> dict:
    [call] = wait_for(lambda: patches(stack.sandbox, belvo_session), 10, "the PATCH to reach the sandbox")
    return call


# --- the worker dies or is stopped --------------------------------------------------------------


def test_worker_host_killed_mid_call_is_recovered_by_another_worker(crash_stack):
    st = crash_stack
    doomed = st.start_worker()
    st.sandbox.fault("hang", delay_seconds=60)
    s, tr = st.submitted()
    _patch_in_flight(st, tr["session"])
    st.kill_machine(doomed)
    killed_at = time.time()
    st.start_worker()
    recovered_at = wait_status(st, s["id"], FINAL, LEASE + 5)
    print(f"SIGKILL -> recorded outcome: {recovered_at - killed_at:.2f}s")
    assert st.outcome(s["id"]) == ("failed", "upstream_outcome_unknown")
    assert recovered_at - killed_at <= LEASE + 4
    assert len(patches(st.sandbox, tr["session"])) == 1


def test_worker_killed_alone_is_recovered_when_a_worker_starts_later(crash_stack):
    st = crash_stack
    doomed = st.start_worker()
    st.sandbox.fault("hang", delay_seconds=60)
    s, tr = st.submitted()
    _patch_in_flight(st, tr["session"])
    st.kill_machine(doomed)
    wait_for(
        lambda: (st.redis.zscore(LEASES_ZSET, s["id"]) or 0) < time.time() * 1000 - 500,
        LEASE + 2,
        "the dead worker's lease to lapse",
    )
    assert st.status(s["id"]) == "submitted", "no worker is left to notice"
    started_at = time.time()
    st.start_worker()
    recovered_at = wait_status(st, s["id"], FINAL, 5)
    print(f"new worker start -> recorded outcome: {recovered_at - started_at:.2f}s")
    assert st.outcome(s["id"]) == ("failed", "upstream_outcome_unknown")
    assert len(patches(st.sandbox, tr["session"])) == 1


def test_retries_run_promptly_after_a_worker_is_killed(crash_stack):
    st = crash_stack
    st.kill_machine(st.start_worker())  # nothing a dead worker held may delay the others' retries
    st.start_worker()
    st.sandbox.fault("status", status=500)  # the first attempt fails: its retry waits in mfa:retries
    s, _ = st.submitted()
    wait_status(st, s["id"], {"succeeded"}, 8)


def test_sigterm_is_a_warm_shutdown(crash_stack):
    st = crash_stack
    worker = st.start_worker()
    st.sandbox.fault("delay", delay_seconds=2)
    s, tr = st.submitted()
    call = _patch_in_flight(st, tr["session"])
    assert descendants(worker.popen.pid) == [], "the job runs in the worker process itself"
    os.kill(worker.popen.pid, signal.SIGTERM)  # the parent only, as `docker stop` signals PID 1
    assert worker.popen.wait(20) == 0
    assert st.status(s["id"]) == "succeeded", "recorded before the worker exited"
    assert time.time() >= call["at"] + 2
    assert len(patches(st.sandbox, tr["session"])) == 1


# --- Redis goes away ----------------------------------------------------------------------------


def _assert_store_unavailable(r: requests.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["code"] == "store_unavailable" and r.headers["Retry-After"]


def test_redis_crash_answers_503_and_everything_recovers(crash_stack):
    st, api = crash_stack, crash_stack.api
    worker = st.start_worker()
    done, _ = st.submitted()
    wait_status(st, done["id"], {"succeeded"}, 10)
    waiting = api.created(st.sandbox.pause())
    cancelled = api.created(st.sandbox.pause())
    assert api.cancel(cancelled["id"]).status_code == 200
    before = {sid: st.status(sid) for sid in (done["id"], waiting["id"], cancelled["id"])}

    st.await_idle_workers(1)  # see the xfail below for an outage that catches the worker busy
    st.kill_redis()
    for r in (
        api.create(st.sandbox.pause()),
        api.get(waiting["id"]),
        api.submit(waiting["id"]),
        api.cancel(waiting["id"]),
    ):
        _assert_store_unavailable(r)
    _assert_store_unavailable(requests.get(st.web.url + "/readyz", timeout=5))
    assert requests.get(st.web.url + "/healthz", timeout=5).status_code == 200
    wait_for(lambda: worker.log_text().count("could not connect to Redis") >= 2, 10, "Redis retries")
    assert worker.alive

    st.restart_redis()
    back_at = time.time()
    s, _ = st.submitted()
    succeeded_at = wait_status(st, s["id"], {"succeeded"}, 15)
    print(f"Redis back -> first success: {succeeded_at - back_at:.2f}s")
    short = api.created(st.sandbox.pause(expiry=1))
    wait_status(st, short["id"], {"expired"}, 12)  # the sweeper's backoff is capped at 10 s
    assert worker.alive and st.web.alive
    assert {sid: st.status(sid) for sid in before} == before
    assert "Traceback" not in st.web.log_text()


def test_retries_run_promptly_after_a_redis_outage(crash_stack):
    st = crash_stack
    worker = st.start_worker()
    st.await_idle_workers(1)
    st.redis_outage(LONG_OUTAGE, unless=lambda: not worker.alive)
    assert worker.alive
    st.sandbox.fault("status", status=500)
    s, _ = st.submitted()
    wait_status(st, s["id"], {"succeeded"}, 8)


def test_worker_survives_a_redis_crash_during_a_job(crash_stack):
    st = crash_stack
    worker = st.start_worker()
    st.sandbox.fault("delay", delay_seconds=1)
    s, tr = st.submitted()
    _patch_in_flight(st, tr["session"])
    st.redis_outage(LONG_OUTAGE, unless=lambda: not worker.alive)
    assert worker.alive, "the worker quit in the outage"
    wait_status(st, s["id"], FINAL, LEASE + 12)  # the sweeper's Redis backoff is capped at 10 s
    # The worker held Belvo's answer through the outage and its lease past it: the answer is recorded.
    assert st.outcome(s["id"]) == ("succeeded", None)
    assert len(patches(st.sandbox, tr["session"])) == 1


# --- Belvo misbehaves ---------------------------------------------------------------------------


def _ended_in_time(done: dict, calls: list[dict], slack: float = 0.0) -> None:
    expires_at = epoch(done["expires_at"])
    assert epoch(done["updated_at"]) <= expires_at + slack
    assert all(call["at"] <= expires_at for call in calls), "no PATCH after the session expired"


def test_answer_slower_than_the_timeout_is_retried_and_succeeds(stack, sb):
    sb.fault("delay", delay_seconds=TIMEOUT + 3)  # Belvo sits on the first PATCH past our timeout
    s, tr = stack.submitted(expiry=15)
    done = stack.api.wait(s["id"], timeout=15)
    assert done["status"] == "succeeded", done
    calls = patches(sb, tr["session"])
    assert [c["fault"] for c in calls] == ["delay", None] and calls[1]["status"] == 200
    assert calls[1]["at"] - calls[0]["at"] >= TIMEOUT, "the first call was given the full timeout"
    _ended_in_time(done, calls)


def test_lost_answer_is_not_recorded_as_belvos_rejection(stack, sb):
    sb.fault("drop", process=True)  # Belvo resumes the link; its answer never arrives
    s, tr = stack.submitted()
    done = stack.api.wait(s["id"], timeout=15)
    link = requests.get(
        f"{sb.url}/api/links/{tr['link']}/", auth=(BELVO_SECRET_ID, BELVO_SECRET_PASSWORD), timeout=5
    ).json()
    assert link["status"] == "valid", "Belvo did resume it"
    assert done["status"] == "succeeded" or done["outcome"]["code"] == "upstream_outcome_unknown", done


def test_html_error_page_with_5xx_is_retried(stack, sb):
    sb.fault("html", status=502)  # a proxy's error page in front of Belvo
    s, tr = stack.submitted(expiry=10)
    done = stack.api.wait(s["id"], timeout=10)
    assert done["status"] == "succeeded", done
    calls = patches(sb, tr["session"])
    assert [c["status"] for c in calls] == [502, 200]
    _ended_in_time(done, calls)


def test_retry_after_is_honoured(stack, sb):
    sb.fault("status", status=429, retry_after=2, count=2)
    s, tr = stack.submitted(expiry=15)
    due: list[float] = []

    def finished() -> bool:  # notes each retry's due time while it waits in mfa:retries
        score = stack.redis.zscore(RETRIES_ZSET, s["id"])
        if score is not None and score / 1000 not in due:
            due.append(score / 1000)
        return stack.status(s["id"]) in FINAL

    wait_for(finished, 15, "the session to end")
    done = stack.api.wait(s["id"])
    assert done["status"] == "succeeded", done
    calls = patches(sb, tr["session"])
    assert [c["status"] for c in calls] == [429, 429, 200]
    _ended_in_time(done, calls)
    assert len(due) == 2
    for call, due_at in zip(calls, sorted(due), strict=False):
        assert due_at >= call["at"] + 2, "the retry is not due before Retry-After has passed"
    for call, retry in itertools.pairwise(calls):
        assert 2 <= retry["at"] - call["at"] <= 2 + 3


def test_persistent_5xx_ends_unavailable_by_expiry_without_late_patches(stack, sb):
    sb.fault("status", status=503, retry_after=1, count=100)
    s, tr = stack.submitted(expiry=3)
    done = stack.api.wait(s["id"], timeout=10)
    assert done["status"] == "failed" and done["outcome"]["code"] == "upstream_unavailable", done
    calls = patches(sb, tr["session"])
    assert len(calls) >= 2 and all(c["status"] == 503 for c in calls)
    _ended_in_time(done, calls, slack=0.5)  # a retry due at expiry is closed by the sweeper (0.1 s)


# --- expiry -------------------------------------------------------------------------------------


def test_expiry_is_swept_durably_without_key_scans_then_forgotten(stack, sb):
    r = stack.redis
    pause = sb.pause(expiry=2)
    s = stack.api.created(pause)
    sid, belvo = s["id"], first(pause)["session"]
    expires_at = int(stack.record(sid)["expires_at"]) / 1000
    r.config_resetstat()
    expired_at = wait_status(stack, sid, {"expired"}, 6)  # read from Redis: an API GET would expire it
    print(f"expires_at -> expired in Redis: {expired_at - expires_at:.2f}s")
    assert expired_at - expires_at <= 2
    assert stack.outcome(sid) == ("expired", "session_expired")
    assert r.zscore(EXPIRY_ZSET, sid) is None
    stats = r.info("commandstats")
    assert "cmdstat_zrangebyscore" in stats, "the sweeper reads its work list"
    assert not {"cmdstat_keys", "cmdstat_scan"} & set(stats), "nobody scans the keyspace"

    keys = [session_key(sid), belvo_key(belvo), token_key(sid)]
    assert r.exists(session_key(sid)), "the record is kept for the retention period"
    wait_for(lambda: not r.exists(*keys), RETENTION + 2, "the session's keys to expire")
    assert time.time() - expired_at >= RETENTION - 0.2
    assert r.zscore(EXPIRY_ZSET, sid) is None and r.zscore(LEASES_ZSET, sid) is None
