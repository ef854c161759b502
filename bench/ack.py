"""The cost of REDIS_WAIT_REPLICAS=1 on the token POST: its latency with the setting off and on.

A replica (a second redis-server on loopback, in sync) follows the run's Redis, as a deployment with
Sentinel has one. Two gunicorns serve the same Redis, one with the setting off (the baseline) and one
with it on; samples alternate between them one at a time, so both see the same machine. Each sample
times one token POST (202) on a session stored just before; no worker runs, so nothing else competes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests
from redis import Redis

from bench.figures import Figure, percentile
from bench.stack import Stack, paused_session, service_env
from devstack.processes import Proc, start_redis, wait_for


@dataclass
class AckResult:
    """Token POST latencies in ms, without (off_ms) and with (on_ms) the acknowledgement."""

    off_ms: list[float]
    on_ms: list[float]


def _token_post_ms(http: requests.Session, web: str, sandbox: str) -> float:
    _, session = paused_session(http, web, sandbox)
    started = time.perf_counter()
    r = http.post(
        f"{web}/v1/sessions/{session['id']}/token",
        json={"token": "111111"},
        headers={"Authorization": f"Bearer {session['client_secret']}"},
        timeout=10,
    )
    took = (time.perf_counter() - started) * 1000
    if r.status_code != 202:
        raise RuntimeError(f"token POST answered {r.status_code}: {r.text}")
    return took


def measure_ack(stack: Stack, redis_proc: Proc, sandbox: Proc, *, samples: int) -> AckResult:
    """`samples` token POSTs on each side, alternating, with one replica in sync."""
    replica = stack.track(
        start_redis(
            stack.root / "redis-replica",
            stack.logs,
            name="redis-replica",
            extra_args=["--replicaof", "127.0.0.1", str(redis_proc.port)],
        )
    )
    with Redis.from_url(replica.url) as client:
        wait_for(lambda: client.info("replication")["master_link_status"] == "up", 30, "the replica to sync")
    env = service_env(redis_proc.url, sandbox.url)
    off = stack.gunicorn("app:create_app()", env, "web-ack-off")
    on = stack.gunicorn("app:create_app()", {**env, "REDIS_WAIT_REPLICAS": "1"}, "web-ack-on")
    result = AckResult([], [])
    try:
        with requests.Session() as http:
            for n in range(samples + 3):
                off_ms = _token_post_ms(http, off.url, sandbox.url)
                on_ms = _token_post_ms(http, on.url, sandbox.url)
                if n >= 3:  # the first few warm connections and caches up
                    result.off_ms.append(off_ms)
                    result.on_ms.append(on_ms)
    finally:
        stack.stop(off, on, replica)
    return result


def ack_figures(result: AckResult) -> list[Figure]:
    """p50 and p99 of the token POST with one replica's acknowledgement, beside the same without it."""
    out = []
    for p in (50, 99):
        value, base = percentile(result.on_ms, p), percentile(result.off_ms, p)
        out.append(
            Figure(
                f"POST /v1/sessions/{{id}}/token latency p{p}, REDIS_WAIT_REPLICAS=1 (baseline: off)",
                round(value, 2),
                "ms",
                round(base, 2),
                round(value / base, 2),
                "report",
                None,
            )
        )
    return out
