"""Dispatch latency on an idle system: token accepted (202 received) to the sandbox receiving the PATCH.

Baseline: RQ's own enqueue-to-start latency for a no-op job, run by the same worker entry and class
(`python -m worker` listening on a queue of its own). Samples alternate between the two, one at a
time, so both see the same machine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import requests
from redis import Redis
from rq import Queue
from rq.job import Job

from bench.baseline_app import NOOP_JOB
from bench.noop import STARTED_KEY
from bench.stack import Stack, paused_session, service_env
from devstack.processes import Proc, wait_for

FINAL = {b"succeeded", b"failed", b"expired", b"cancelled"}
BASELINE_QUEUE = "bench-dispatch-baseline"
PAUSE_BETWEEN = 0.02  # lets the worker return to its blocking dequeue: "idle system"


@dataclass
class DispatchResult:
    """Latencies in ms: the service's, RQ's (job-recorded start) and RQ's (Job.started_at - enqueued_at)."""

    service_ms: list[float]
    baseline_ms: list[float]
    baseline_fields_ms: list[float]


def service_sample(http: requests.Session, web: str, sandbox: str, redis: Redis) -> float:
    pause, session = paused_session(http, web, sandbox)
    submitted = http.post(
        f"{web}/v1/sessions/{session['id']}/token",
        json={"token": "111111"},
        headers={"Authorization": f"Bearer {session['client_secret']}"},
        timeout=5,
    )
    accepted_at = time.time()
    if submitted.status_code != 202:
        raise RuntimeError(f"token POST answered {submitted.status_code}: {submitted.text}")
    key = f"mfa:session:{session['id']}"
    wait_for(lambda: redis.hget(key, "status") in FINAL, 30, f"session {session['id']} to end", 0.002)
    calls = http.get(f"{sandbox}/_sandbox/calls", params={"session": pause[0]["session"]}, timeout=5).json()
    patches = [c for c in calls if c["method"] == "PATCH"]
    if len(patches) != 1:
        raise RuntimeError(f"expected one PATCH for session {session['id']}, sandbox saw {len(patches)}")
    return (patches[0]["at"] - accepted_at) * 1000


def _baseline_sample(queue: Queue, redis: Redis, n: int) -> tuple[float, float]:
    sample = f"{time.time_ns()}-{n}"
    job = queue.enqueue(NOOP_JOB, sample, result_ttl=60)
    enqueued_at = time.time()
    started = wait_for(lambda: redis.get(STARTED_KEY + sample), 30, f"no-op job {job.id} to start", 0.002)
    job = Job.fetch(job.id, connection=redis)
    # Job.started_at is set by the worker before it forks the work horse (RQ's own bookkeeping).
    fields_ms = (job.started_at - job.enqueued_at).total_seconds() * 1000 if job.started_at else float("nan")
    return (float(started) - enqueued_at) * 1000, fields_ms


def measure_dispatch(
    stack: Stack, redis_proc: Proc, sandbox: Proc, *, samples: int, env_over: Mapping[str, str] | None = None
) -> DispatchResult:
    """One service worker and one baseline worker, idle between samples; `samples` of each.
    `env_over`: settings of the service's web and worker over the benchmark's defaults."""
    env = {**service_env(redis_proc.url, sandbox.url), **(env_over or {})}
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    web = stack.gunicorn("app:create_app()", env, "web")
    workers = stack.workers(1, env) + stack.workers(1, {**env, "RESUME_QUEUE": BASELINE_QUEUE})
    redis = Redis.from_url(redis_proc.url)
    http = requests.Session()
    try:
        queue = Queue(BASELINE_QUEUE, connection=redis)
        service, baseline, fields = [], [], []
        for n in range(samples + 3):
            svc = service_sample(http, web.url, sandbox.url, redis)
            time.sleep(PAUSE_BETWEEN)
            base, field_ms = _baseline_sample(queue, redis, n)
            time.sleep(PAUSE_BETWEEN)
            if n >= 3:  # the first few pay for first connections and imports
                service.append(svc)
                baseline.append(base)
                fields.append(field_ms)
        return DispatchResult(service, baseline, fields)
    finally:
        http.close()
        redis.close()
        stack.stop(*workers, web)


def alternate_samples(
    http: requests.Session, webs: Mapping[str, Proc], sandbox: str, redis: Redis, samples: int
) -> dict[str, list[float]]:
    """`samples` dispatch samples (ms) per side, one at a time, the sides taking turns to go first; `webs`:
    each side's web, each with a worker of its own behind it."""
    found: dict[str, list[float]] = {side: [] for side in webs}
    order = list(webs)
    for n in range(samples + 3):
        for side in order[n % len(order) :] + order[: n % len(order)]:
            ms = service_sample(http, webs[side].url, sandbox, redis)
            time.sleep(PAUSE_BETWEEN)
            if n >= 3:  # the first few pay for first connections and imports
                found[side].append(ms)
    return found


def measure_dispatch_sides(
    stack: Stack, redis_proc: Proc, sandbox: Proc, *, samples: int, sides: Mapping[str, Mapping[str, str]]
) -> dict[str, list[float]]:
    """Dispatch latency of the service in several configurations at once: a web and a worker per side,
    each side on a resume queue of its own, with samples alternating between the sides one at a time
    (so a drift in machine load reaches every side alike). `sides`: settings over the defaults."""
    base = service_env(redis_proc.url, sandbox.url)
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    procs, webs = [], {}
    redis = Redis.from_url(redis_proc.url)
    http = requests.Session()
    try:
        for side, over in sides.items():
            env = {**base, **over, "RESUME_QUEUE": f"bench-dispatch-{side}"}
            webs[side] = stack.gunicorn("app:create_app()", env, f"web-dispatch-{side}")
            procs += [webs[side], *stack.workers(1, env)]
        return alternate_samples(http, webs, sandbox.url, redis, samples)
    finally:
        http.close()
        redis.close()
        stack.stop(*procs)
