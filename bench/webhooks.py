"""Webhooks on versus off, in one run: resume dispatch latency, POST /v1/sessions throughput, Redis memory.

Two services share the Redis and the sandbox: "off" (no destination: no event is written) and "on"
(WEBHOOK_URL at a receiver process on loopback: every session's steps and end are events, delivered by
the worker's threads while it resumes). Each has its own gunicorn, worker and resume queue.
- Dispatch: token accepted (202) to PATCH received, samples alternating between the two, one at a time;
  the "on" worker delivers two webhooks per sample meanwhile (checked at the end).
- Throughput: wrk on POST /v1/sessions, both loaded at the same time in paired rounds (bench/paired.py,
  half the connections each); no worker runs (the web tier's figure, as in bench/http.py), so the "on"
  events wait in the outbox.
- Memory: bytes per waiting session on a Redis of its own, with and without its pending event.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import requests
from redis import Redis

from bench import paired
from bench.dispatch import alternate_samples
from bench.http import CREATE_BODY
from bench.load import run_wrk
from bench.paired import Round
from bench.seed import seed_sessions
from bench.stack import API_KEY, Stack, service_env
from devstack.processes import PYTHON, Proc, spawn, wait_for

SECRET = "whsec_YmVuY2gtd2ViaG9vay1zaWduaW5nLWtleS0zMi1ieXRlcyE="
SIDES = ("off", "on")
WEBHOOK_DISPATCH_MAX_RATIO = 1.25  # webhooks on may cost a resume at most a quarter more latency
WEBHOOK_CREATE_MIN_RATIO = 0.85  # and the create route at most 15% of its throughput
MEMORY_SESSIONS = 10_000


@dataclass
class WebhookBenchResult:
    """Latencies (ms) and wrk runs of each side, memory per session (bytes), deliveries counted."""

    dispatch_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SIDES})
    create: list[Round] = field(default_factory=list)  # paired rounds of POST /v1/sessions
    memory_bytes: dict[str, float] = field(default_factory=dict)
    delivered: int = 0


def start_receiver(stack: Stack) -> Proc:
    """bench/receiver.py on a free loopback port."""
    port_file = stack.logs / f"receiver-{time.monotonic_ns()}.port"
    stack.logs.mkdir(parents=True, exist_ok=True)
    proc = stack.track(
        spawn("receiver", [PYTHON, "-m", "bench.receiver", "--port-file", str(port_file)], stack.logs)
    )
    proc.port = int(
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 20, "the receiver")
    )
    proc.url = f"http://127.0.0.1:{proc.port}"
    return proc


def _envs(redis_url: str, sandbox_url: str, receiver_url: str) -> dict[str, dict[str, str]]:
    off = {**service_env(redis_url, sandbox_url), "RESUME_QUEUE": "bench-webhooks-off"}
    on = {
        **off,
        "RESUME_QUEUE": "bench-webhooks-on",
        "WEBHOOK_URL": f"{receiver_url}/hook",
        "WEBHOOK_SECRETS": SECRET,
        "WEBHOOK_ALLOW_HTTP": "1",
        "WEBHOOK_ALLOW_PRIVATE": "1",
    }
    return {"off": off, "on": on}


def _memory(stack: Stack, receiver_url: str) -> dict[str, float]:
    out = {}
    for side, webhooks in (("off", ()), ("on", (f"{receiver_url}/hook",))):
        proc = stack.redis(f"redis-memory-webhooks-{side}")
        with Redis.from_url(proc.url) as redis:
            redis.flushall()
            before = int(redis.info("memory")["used_memory"])
            seed_sessions(redis, MEMORY_SESSIONS, webhooks=webhooks)
            out[side] = (int(redis.info("memory")["used_memory"]) - before) / MEMORY_SESSIONS
        stack.stop(proc)
    return out


def measure_webhooks(
    stack: Stack, redis_proc: Proc, sandbox: Proc, *, samples: int, seconds: float, conns: int, rounds: int
) -> WebhookBenchResult:
    """Every figure of the phase; every process it starts is stopped before it returns."""
    result = WebhookBenchResult()
    receiver = start_receiver(stack)
    envs = _envs(redis_proc.url, sandbox.url, receiver.url)
    webs = {side: stack.gunicorn("app:create_app()", envs[side], f"web-webhooks-{side}") for side in SIDES}
    redis = Redis.from_url(redis_proc.url)
    http = requests.Session()
    workers: list[Proc] = []
    try:
        out = stack.root / "wrk"
        for i in range(max(paired.MIN_ROUNDS, rounds)):
            starts = {
                side: functools.partial(
                    run_wrk,
                    webs[side].url,
                    name=f"webhooks-create-{side}-{i}",
                    out_dir=out,
                    seconds=seconds,
                    conns=max(1, conns // 2),
                    method="POST",
                    path="/v1/sessions",
                    body=CREATE_BODY,
                    auth=f"Bearer {API_KEY}",
                    server_pid=webs[side].popen.pid,
                )
                for side in SIDES
            }
            found = paired.run_together(starts)
            for run in found.values():
                if run.failed:
                    raise RuntimeError(f"{run.name}: errors {run.errors}; see {out}")
            result.create.append(found)
            print(f"  create round {i}: {paired.describe(found)}")
        redis.flushdb()  # the outbox holds thousands of events no receiver needs: the dispatch starts clean
        requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
        workers = [w for side in SIDES for w in stack.workers(1, envs[side])]
        result.dispatch_ms = alternate_samples(http, webs, sandbox.url, redis, samples)
        expected = 2 * (samples + 3)  # each "on" session: awaiting_token, then succeeded

        def counted() -> int:
            got = int(http.get(f"{receiver.url}/count", timeout=5).text)
            return got if got >= expected else 0

        result.delivered = int(wait_for(counted, 60, f"{expected} webhooks to reach the receiver"))
        result.memory_bytes = _memory(stack, receiver.url)
        return result
    finally:
        http.close()
        redis.close()
        stack.stop(*workers, *webs.values(), receiver)
