"""Resume throughput: N worker processes against a sandbox answering every call in 200 ms.

M = 20 x N sessions are created first; the clock runs from the first token POST to the last session's
final `updated_at`. The ideal is N / 0.2 s: every worker always inside a 200 ms call.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from redis import Redis

from bench.procs import cpu_seconds, memory_kib, tree
from bench.profile import Profile, Spy
from bench.stack import Stack, paused_session, service_env
from devstack.processes import Proc, wait_for

LATENCY_MS = 200
SESSIONS_PER_WORKER = 20
SUBMITTERS = 8  # concurrent token POSTs: a burst of end users, not one at a time


@dataclass
class ThroughputResult:
    """One run with N workers."""

    workers: int
    sessions: int
    seconds: float
    succeeded: int
    worker_cpu_ms_per_job: float  # worker processes' CPU (children included) per resumed session
    machine_busy: float  # share of both cores busy during the run, whoever used them
    memory_idle_kib: list[dict[str, int]] = field(default_factory=list)  # per worker tree, before
    memory_after_kib: list[dict[str, int]] = field(default_factory=list)  # per worker tree, after
    profile: Profile | None = None  # py-spy of the first worker and its work horses, when asked for

    @property
    def per_second(self) -> float:
        return self.sessions / self.seconds if self.seconds else 0.0

    @property
    def ideal(self) -> float:
        return self.workers / (LATENCY_MS / 1000)


def _machine_ticks() -> tuple[int, int]:
    values = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return sum(values), values[3] + values[4]  # all, idle + iowait


def _tree_memory(proc: Proc) -> dict[str, int]:
    """The worker and its children (RQ's scheduler, if this worker runs it; a horse, if one is working)."""
    pids = tree(proc.popen.pid)
    total = {"processes": len(pids), "rss": 0, "pss": 0}
    for pid in pids:
        mem = memory_kib(pid)
        total["rss"] += mem["rss"]
        total["pss"] += mem["pss"]
    return total


_local = threading.local()


def _create(web: str, sandbox: str) -> tuple[str, str]:
    # One keep-alive session per submitting thread: requests.Session is not meant to be shared.
    http = _local.__dict__.setdefault("http", requests.Session())
    _, session = paused_session(http, web, sandbox)
    return session["id"], session["client_secret"]


def _submit(web: str, session: tuple[str, str]) -> None:
    r = requests.post(
        f"{web}/v1/sessions/{session[0]}/token",
        json={"token": "111111"},
        headers={"Authorization": f"Bearer {session[1]}"},
        timeout=30,
    )
    if r.status_code != 202:
        raise RuntimeError(f"token POST answered {r.status_code}: {r.text}")


def measure_throughput(
    stack: Stack,
    redis_proc: Proc,
    sandbox: Proc,
    web: Proc,
    *,
    workers: int,
    profile_to: Path | None = None,
) -> ThroughputResult:
    """Start `workers` worker processes, resume 20 x N sessions through the API, stop them."""
    env = service_env(redis_proc.url, sandbox.url)
    config = f"{sandbox.url}/_sandbox/config"
    requests.put(config, json={"latency_ms": LATENCY_MS}, timeout=5).raise_for_status()
    count = SESSIONS_PER_WORKER * workers
    redis = Redis.from_url(redis_proc.url)
    procs = stack.workers(workers, env)
    spy = None
    try:
        with ThreadPoolExecutor(SUBMITTERS) as pool:
            sessions = list(pool.map(lambda _: _create(web.url, sandbox.url), range(count)))
            time.sleep(1)  # let the workers settle into their blocking dequeue before memory is read
            idle = [_tree_memory(p) for p in procs]
            cpu0 = sum(cpu_seconds(p.popen.pid) for p in procs)
            ticks0 = _machine_ticks()
            spy = Spy(procs[0].popen.pid, profile_to).start() if profile_to else None
            started = time.time()
            list(pool.map(lambda s: _submit(web.url, s), sessions))
        keys = [f"mfa:session:{sid}" for sid, _ in sessions]

        def statuses() -> list[tuple[bytes | None, bytes | None]]:
            with redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(key, "status", "updated_at")
                return pipe.execute()

        def all_final() -> bool:
            return all(s in (b"succeeded", b"failed", b"expired") for s, _ in statuses())

        wait_for(all_final, 60 + count * 2 * LATENCY_MS / 1000, f"{count} sessions to end", 0.05)
        profile = spy.stop() if spy else None
        spy = None
        ticks1 = _machine_ticks()
        cpu = sum(cpu_seconds(p.popen.pid) for p in procs) - cpu0
        after = [_tree_memory(p) for p in procs]
        final = statuses()
        ended = max(int(u) for _, u in final) / 1000
        busy = 1 - (ticks1[1] - ticks0[1]) / max(1, ticks1[0] - ticks0[0])
        return ThroughputResult(
            workers=workers,
            sessions=count,
            seconds=ended - started,
            succeeded=sum(s == b"succeeded" for s, _ in final),
            worker_cpu_ms_per_job=1000 * cpu / count,
            machine_busy=busy,
            memory_idle_kib=idle,
            memory_after_kib=after,
            profile=profile,
        )
    finally:
        if spy:
            spy.stop()
        redis.close()
        stack.stop(*procs)
        requests.put(config, json={"latency_ms": 0}, timeout=5)
