"""Every guarantee of the README with many upstream calls in flight in one worker process.

Proven here, with 20 calls in flight in one `python -m worker` (WORKER_CONCURRENCY):
- SIGKILL: all 20 end recorded (`upstream_outcome_unknown`) within the lease, by another worker's
  sweeper, and none is repeated; the 20 calls cost the dead worker no process of their own;
- SIGTERM: all 20 finish and are recorded, the jobs still queued are not taken (they stay in RQ's queue
  for the next worker), and the worker exits 0; a second SIGTERM exits at once, leaving the calls in
  flight to their leases;
- a Redis outage: every call is recorded with Belvo's answer once Redis returns, each exactly once;
- a job that raises and one that runs past its timeout end their own steps, and the other 18 succeed;
- calls longer than several leases: one keeper keeps every lease alive, so no sweeper mistakes them
  for a dead worker's;
- the jobs come off RQ's queue through its reliable dequeue (BLMOVE into the intermediate list).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rq import Queue
from rq.job import Job

from devstack.processes import wait_for
from mfa.keys import LEASES_ZSET, events_key, session_key
from tests.stack import Stack, build_stack, descendants, patches
from tests.support import FINAL, SERVICE_ENV

pytestmark = pytest.mark.slow

LEASE = float(SERVICE_ENV["LEASE_SECONDS"])
IN_FLIGHT = 20


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack per test (they kill and stop workers); no worker until the test starts one."""
    with build_stack(tmp_path, {"UPSTREAM_TIMEOUT_SECONDS": "10"}) as st:
        yield st


def _submit(st: Stack, count: int) -> list[tuple[str, str]]:
    """`count` sessions submitted through the API: (our id, Belvo's session id) each."""
    return [(s["id"], tr["session"]) for s, tr in (st.submitted() for _ in range(count))]


def _await_calls(st: Stack, count: int) -> list[dict]:
    calls = wait_for(
        lambda: len(found := st.sandbox.calls(method="PATCH")) >= count and found,
        15,
        f"{count} PATCHes to reach the sandbox",
    )
    assert isinstance(calls, list)
    return calls


def _await_final(st: Stack, sessions: list[tuple[str, str]], timeout: float) -> float:
    wait_for(lambda: all(st.status(sid) in FINAL for sid, _ in sessions), timeout, "every session to end")
    return time.time()


def test_sigkill_with_twenty_calls_in_flight_is_recovered_by_another_worker(stack):
    st = stack
    doomed = st.start_worker(WORKER_CONCURRENCY=str(IN_FLIGHT))
    st.sandbox.fault("hang", delay_seconds=60, count=IN_FLIGHT)
    sessions = _submit(st, IN_FLIGHT)
    _await_calls(st, IN_FLIGHT)
    assert st.redis.zcard(LEASES_ZSET) == IN_FLIGHT, "every call is in flight under its lease"
    assert descendants(doomed.popen.pid) == [], "20 calls in flight in one process, no fork among them"
    st.kill_machine(doomed)
    killed_at = time.time()
    st.start_worker()
    recovered_at = _await_final(st, sessions, LEASE + 5)
    print(f"SIGKILL with {IN_FLIGHT} in flight -> all recorded: {recovered_at - killed_at:.2f}s")
    assert recovered_at - killed_at <= LEASE + 4
    assert [st.outcome(sid) for sid, _ in sessions] == [("failed", "upstream_outcome_unknown")] * IN_FLIGHT
    assert [len(patches(st.sandbox, belvo)) for _, belvo in sessions] == [1] * IN_FLIGHT, "none repeated"


def test_sigterm_with_twenty_calls_in_flight_finishes_them_and_takes_nothing_new(stack):
    st = stack
    worker = st.start_worker(WORKER_CONCURRENCY=str(IN_FLIGHT))
    st.sandbox.fault("delay", delay_seconds=2, count=IN_FLIGHT + 5)
    st.redis.config_resetstat()
    sessions = _submit(st, IN_FLIGHT + 5)
    calls = _await_calls(st, IN_FLIGHT)
    queue = Queue(st.env.get("RESUME_QUEUE", "belvo-resume"), connection=st.redis)
    wait_for(lambda: queue.count == 5, 5, "the jobs beyond the worker's slots to wait in RQ's queue")
    waiting = set(queue.job_ids)

    os.kill(worker.popen.pid, signal.SIGTERM)  # the parent only, as `docker stop` signals PID 1
    assert worker.popen.wait(20) == 0
    stopped_at = time.time()
    in_flight = {c["session"] for c in calls}
    done = [(sid, belvo) for sid, belvo in sessions if belvo in in_flight]
    assert len(done) == IN_FLIGHT
    assert [st.outcome(sid) for sid, _ in done] == [("succeeded", None)] * IN_FLIGHT, "recorded before exit"
    assert all(stopped_at >= c["at"] + 2 for c in calls), "each call was let finish"
    assert len(st.sandbox.calls(method="PATCH")) == IN_FLIGHT, "no job was taken after the stop"
    assert set(queue.job_ids) == waiting, "the jobs not started stay in RQ's queue"
    stats = st.redis.info("commandstats")
    assert "cmdstat_blmove" in stats and "cmdstat_blpop" not in stats, "RQ's reliable dequeue"

    st.start_worker()
    _await_final(st, sessions, 15)
    assert [st.outcome(sid) for sid, _ in sessions] == [("succeeded", None)] * (IN_FLIGHT + 5)
    assert [len(patches(st.sandbox, belvo)) for _, belvo in sessions] == [1] * (IN_FLIGHT + 5)


def test_a_second_sigterm_exits_at_once_and_leaves_the_calls_to_their_leases(stack):
    st = stack
    worker = st.start_worker()
    st.sandbox.fault("hang", delay_seconds=60, count=3)
    sessions = _submit(st, 3)
    _await_calls(st, 3)
    os.kill(worker.popen.pid, signal.SIGTERM)
    wait_for(lambda: "warm shutdown requested" in worker.log_text(), 5, "the warm shutdown to begin")
    time.sleep(1.1)  # a repeat within a second is taken as the same stop, delivered twice
    os.kill(worker.popen.pid, signal.SIGTERM)
    assert worker.popen.wait(5) == 1, "a cold shutdown exits at once, and not as a clean one"
    st.start_worker()
    _await_final(st, sessions, LEASE + 5)
    assert [st.outcome(sid) for sid, _ in sessions] == [("failed", "upstream_outcome_unknown")] * 3
    assert [len(patches(st.sandbox, belvo)) for _, belvo in sessions] == [1] * 3


def test_redis_outage_with_twenty_calls_in_flight_records_every_answer_once_redis_returns(stack):
    st = stack
    worker = st.start_worker()
    st.sandbox.fault("delay", delay_seconds=1, count=IN_FLIGHT)
    sessions = _submit(st, IN_FLIGHT)
    _await_calls(st, IN_FLIGHT)
    st.redis_outage(7.0, unless=lambda: not worker.alive)  # outlasts every lease and redis-py's retries
    back_at = time.time()
    assert worker.alive, "the worker quit in the outage"
    recorded_at = _await_final(st, sessions, LEASE + 12)
    print(f"Redis back -> {IN_FLIGHT} answers recorded: {recorded_at - back_at:.2f}s")
    assert [st.outcome(sid) for sid, _ in sessions] == [("succeeded", None)] * IN_FLIGHT
    # Created (1), submitted (2), recorded (3): one change each, and its one entry in the change log.
    assert [int(st.record(sid)["version"]) for sid, _ in sessions] == [3] * IN_FLIGHT
    assert [st.redis.xlen(events_key(sid)) for sid, _ in sessions] == [2] * IN_FLIGHT
    assert [len(patches(st.sandbox, belvo)) for _, belvo in sessions] == [1] * IN_FLIGHT


def test_a_job_that_raises_and_one_that_times_out_end_their_own_steps_only(stack):
    st = stack
    st.sandbox.fault("delay", delay_seconds=2.5, count=IN_FLIGHT - 1)
    sessions = _submit(st, IN_FLIGHT)  # queued: no worker runs yet
    (broken, _), (late, _) = sessions[:2]
    st.redis.hset(session_key(broken), "expires_at", "not-a-time")  # its claim's script fails: the job raises
    late_job = Job.fetch(f"resume_session-{late}-s1-a1", connection=st.redis)
    late_job.timeout = 1  # this job runs past its timeout while its call is in flight
    late_job.save()
    worker = st.start_worker()
    _await_final(st, sessions, 20)
    assert st.outcome(broken) == ("failed", "internal_error")
    assert st.outcome(late) == ("failed", "upstream_outcome_unknown")
    assert [st.outcome(sid) for sid, _ in sessions[2:]] == [("succeeded", None)] * (IN_FLIGHT - 2)
    assert [len(patches(st.sandbox, belvo)) for _, belvo in sessions] == [0] + [1] * (IN_FLIGHT - 1)
    assert worker.alive


def test_one_keeper_keeps_twenty_leases_alive_through_calls_longer_than_three_leases(stack):
    st = stack
    # No sweeper pass in the window measured: its heartbeat (mfa:workers) is a ZADD too.
    worker = st.start_worker(SWEEP_INTERVAL_SECONDS="600")
    st.sandbox.fault("delay", delay_seconds=3 * LEASE, count=IN_FLIGHT)
    sessions = _submit(st, IN_FLIGHT)
    _await_calls(st, IN_FLIGHT)
    st.redis.config_resetstat()
    _await_final(st, sessions, 3 * LEASE + 10)
    assert [st.outcome(sid) for sid, _ in sessions] == [("succeeded", None)] * IN_FLIGHT
    beats = st.redis.info("commandstats")["cmdstat_zadd"]["calls"]
    # A beat every third of a lease renews all 20 leases in one ZADD: about 9 in 3 leases, not 9 x 20.
    assert beats <= 2 * 9, f"{beats} ZADDs for {IN_FLIGHT} leases over {3 * LEASE:.0f}s"
    assert "could not renew" not in worker.log_text()
