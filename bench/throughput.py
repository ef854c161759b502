"""Resume throughput and worker memory: many calls in flight in one worker process, and today's model.

The sandbox answers every call after 2 s (`latency_ms=2000`). Each setup runs `python -m worker`
processes at a WORKER_CONCURRENCY: one process at concurrency c (ideal c / 2 s), or N processes at
concurrency 1, today's model (ideal N / 2 s). Its sessions are made through the sandbox and the API
first; then every token is POSTed at once (8 concurrent clients) and the clock runs from the first
POST to the last session's final `updated_at`. A setup gets 256 sessions, or 16 rounds of calls where
that is fewer (256 calls one at a time would take 8.5 minutes to say what 16 say).

Memory: the PSS of every worker process (/proc/<pid>/smaps_rollup: shared pages counted by share),
sampled through the run; a setup's figure is the peak of their sum, i.e. the processes with their
calls in flight.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from redis import Redis

from bench.procs import cpu_seconds, memory_kib
from bench.profile import Profile, Spy
from bench.stack import Stack, paused_session, service_env
from devstack.processes import Proc, wait_for

LATENCY_MS = 2000
SESSIONS = 256
MAX_ROUNDS = 16
SUBMITTERS = 8  # concurrent token POSTs: a burst of end users, not one at a time


@dataclass
class ThroughputResult:
    """One setup: `processes` worker processes at WORKER_CONCURRENCY=`concurrency`."""

    processes: int
    concurrency: int
    sessions: int
    seconds: float
    succeeded: int
    worker_cpu_ms_per_job: float  # the worker processes' CPU per resumed session
    machine_busy: float  # share of both cores busy during the run, whoever used them
    pss_idle_kib: int  # all the setup's worker processes, waiting for work
    pss_peak_kib: int  # the same, at the peak of the run
    rss_peak_kib: int
    profile: Profile | None = field(default=None)  # py-spy of the (first) worker, when asked for

    @property
    def in_flight(self) -> int:
        """Calls the setup can have in flight at once."""
        return self.processes * self.concurrency

    @property
    def per_second(self) -> float:
        return self.sessions / self.seconds if self.seconds else 0.0

    @property
    def ideal(self) -> float:
        return self.in_flight / (LATENCY_MS / 1000)

    @property
    def label(self) -> str:
        if self.processes == 1:
            return f"1 process at concurrency {self.concurrency}"
        return f"{self.processes} processes at concurrency {self.concurrency}"


def sessions_for(in_flight: int, sessions: int = SESSIONS, max_rounds: int = MAX_ROUNDS) -> int:
    """The sessions a setup resumes: `sessions`, or `max_rounds` rounds of calls where that is fewer."""
    return min(sessions, max_rounds * in_flight)


def _machine_ticks() -> tuple[int, int]:
    values = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return sum(values), values[3] + values[4]  # all, idle + iowait


class MemorySampler(threading.Thread):
    """Sums the PSS and RSS of `pids` every `interval` seconds and keeps the peak."""

    def __init__(self, pids: list[int], interval: float) -> None:
        super().__init__(name="memory-sampler", daemon=True)
        self.pids, self.interval = pids, interval
        self.peak = {"pss": 0, "rss": 0}
        self._halt = threading.Event()

    def sample(self) -> dict[str, int]:
        """One reading of every process, summed."""
        readings = [memory_kib(pid) for pid in self.pids]
        total = {"pss": sum(r["pss"] for r in readings), "rss": sum(r["rss"] for r in readings)}
        for key in total:
            self.peak[key] = max(self.peak[key], total[key])
        return total

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def finish(self) -> dict[str, int]:
        """Stop sampling, take one last reading; returns the peak."""
        self._halt.set()
        if self.is_alive():
            self.join()
        self.sample()
        return self.peak


_local = threading.local()


def _http() -> requests.Session:
    # One keep-alive session per submitting thread: requests.Session is not meant to be shared.
    return _local.__dict__.setdefault("http", requests.Session())


def _create(web: str, sandbox: str) -> tuple[str, str]:
    _, session = paused_session(_http(), web, sandbox)
    return session["id"], session["client_secret"]


def _submit(web: str, session: tuple[str, str]) -> None:
    r = _http().post(
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
    processes: int,
    concurrency: int,
    sessions: int = SESSIONS,
    profile_to: Path | None = None,
) -> ThroughputResult:
    """Start the setup's workers, resume its sessions through the API, stop the workers."""
    env = {**service_env(redis_proc.url, sandbox.url), "WORKER_CONCURRENCY": str(concurrency)}
    config = f"{sandbox.url}/_sandbox/config"
    requests.put(config, json={"latency_ms": LATENCY_MS}, timeout=5).raise_for_status()
    count = sessions_for(processes * concurrency, sessions)
    redis = Redis.from_url(redis_proc.url)
    procs = stack.workers(processes, env)
    pids = [p.popen.pid for p in procs]
    sampler = MemorySampler(pids, max(0.2, processes / 100))  # 128 readings a second at most
    spy = None
    try:
        with ThreadPoolExecutor(SUBMITTERS) as pool:
            made = list(pool.map(lambda _: _create(web.url, sandbox.url), range(count)))
            idle = sampler.sample()
            sampler.peak = dict(idle)
            cpu0 = sum(cpu_seconds(pid) for pid in pids)
            ticks0 = _machine_ticks()
            spy = Spy(pids[0], profile_to).start() if profile_to else None
            sampler.start()
            started = time.time()
            list(pool.map(lambda s: _submit(web.url, s), made))
        keys = [f"mfa:session:{sid}" for sid, _ in made]

        def statuses() -> list[tuple[bytes | None, bytes | None]]:
            with redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(key, "status", "updated_at")
                return pipe.execute()

        def all_final() -> bool:
            return all(s in (b"succeeded", b"failed", b"expired") for s, _ in statuses())

        rounds = -(-count // (processes * concurrency))
        wait_for(all_final, 60 + rounds * 2 * LATENCY_MS / 1000, f"{count} sessions to end", 0.05)
        peak = sampler.finish()
        profile = spy.stop() if spy else None
        spy = None
        ticks1 = _machine_ticks()
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
        final = statuses()
        ended = max(int(u) for _, u in final) / 1000
        return ThroughputResult(
            processes=processes,
            concurrency=concurrency,
            sessions=count,
            seconds=ended - started,
            succeeded=sum(s == b"succeeded" for s, _ in final),
            worker_cpu_ms_per_job=1000 * cpu / count,
            machine_busy=1 - (ticks1[1] - ticks0[1]) / max(1, ticks1[0] - ticks0[0]),
            pss_idle_kib=idle["pss"],
            pss_peak_kib=peak["pss"],
            rss_peak_kib=peak["rss"],
            profile=profile,
        )
    finally:
        if spy:
            spy.stop()
        sampler.finish()
        redis.close()
        stack.stop(*procs)
        requests.put(config, json={"latency_ms": 0}, timeout=5)
