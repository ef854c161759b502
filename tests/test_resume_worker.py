"""ResumeWorker in this process: many jobs at once, each ending on its own, over pooled Belvo connections.

The worker class is the one `python -m worker` runs (tests/inprocess.py drives it in burst mode); the
system tier (tests/system/test_calls_in_flight.py) proves the same with real processes killed,
stopped and cut off from Redis.
"""

from __future__ import annotations

import json

from rq.job import Job

from mfa.keys import session_key
from tests.support import first


def _submitted(api, sandbox, count: int) -> list[tuple[str, str]]:
    """`count` sessions submitted through the API, their jobs queued: (our id, Belvo's session) each."""
    sessions = []
    for _ in range(count):
        pause = sandbox.pause()
        s = api.created(pause)
        assert api.submit(s["id"], credential=s["client_secret"]).status_code == 202
        sessions.append((s["id"], first(pause)["session"]))
    return sessions


def _outcome(redis, session_id: str) -> tuple[str, str | None]:
    """The stored status and outcome code, read from Redis (a damaged record cannot be read by the API)."""
    status, outcome = redis.hmget(session_key(session_id), "status", "outcome")
    return status.decode(), json.loads(outcome).get("code") if outcome else None


def test_calls_run_at_once_up_to_worker_concurrency(make_api, sandbox):
    api = make_api(WORKER_CONCURRENCY="4", UPSTREAM_TIMEOUT_SECONDS="5")
    sandbox.fault("delay", delay_seconds=1.5, count=8)
    sessions = _submitted(api, sandbox, 8)
    api.tick()  # one burst: every job, four at a time
    arrivals = sorted(c["at"] for c in sandbox.calls(method="PATCH"))
    assert len(arrivals) == 8
    assert arrivals[3] - arrivals[0] < 1.5, "the first four calls were in flight together"
    assert arrivals[4] - arrivals[0] >= 1.5, "the fifth waited for a free slot"
    assert [api.get(sid).json()["status"] for sid, _ in sessions] == ["succeeded"] * 8


def test_a_job_that_times_out_ends_its_own_step_only(make_api, sandbox, redis):
    api = make_api(UPSTREAM_TIMEOUT_SECONDS="5")
    sandbox.fault("delay", delay_seconds=2.5, count=3)
    sessions = _submitted(api, sandbox, 3)
    late = Job.fetch(f"resume_session-{sessions[0][0]}-s1-a1", connection=redis)
    late.timeout = 1  # this job alone runs past its timeout, while the other two are in flight
    late.save()
    api.tick()
    assert [_outcome(redis, sid) for sid, _ in sessions] == [
        ("failed", "upstream_outcome_unknown"),  # its call was in flight when the job was stopped
        ("succeeded", None),
        ("succeeded", None),
    ]
    assert [len(sandbox.calls(method="PATCH", session=belvo)) for _, belvo in sessions] == [1, 1, 1]


def test_a_job_that_raises_ends_its_own_step_only(make_api, sandbox, redis):
    api = make_api(UPSTREAM_TIMEOUT_SECONDS="5")
    sandbox.fault("delay", delay_seconds=1, count=2)
    sessions = _submitted(api, sandbox, 3)
    redis.hset(session_key(sessions[0][0]), "expires_at", "not-a-time")  # its claim's script fails
    api.tick()
    assert [_outcome(redis, sid) for sid, _ in sessions] == [
        ("failed", "internal_error"),  # it raised before its call: nothing was sent
        ("succeeded", None),
        ("succeeded", None),
    ]
    assert [len(sandbox.calls(method="PATCH", session=belvo)) for _, belvo in sessions] == [0, 1, 1]


def test_belvo_connections_are_pooled_one_per_call_in_flight(make_api, sandbox):
    api = make_api(WORKER_CONCURRENCY="12")
    http = api.jobs.runner.client.http
    sandbox.configure(latency_ms=300)  # every call in flight at once, so each needs a connection
    try:
        for _ in range(2):
            _submitted(api, sandbox, 12)
            api.tick()
    finally:
        sandbox.configure(latency_ms=0)
    pools = http.get_adapter(sandbox.url).poolmanager.pools
    [pool] = [pools[key] for key in pools.keys()]  # the sandbox's host: the one Belvo stands for
    # requests' default keeps 10 per host and drops the rest after each call: 12 + 2 by the second round.
    assert pool.num_connections == 12, "the second round reused the first round's connections"
    assert len(sandbox.calls(method="PATCH")) == 24
