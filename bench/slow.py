"""Slow clients: GET /v1/sessions/{id} under wrk, alone and beside 200 connections that send their headers
one line every 2 s (and connect again whenever the server hangs up on them, so 200 are held throughout).

The figures compare the service with itself in the same run: requests/s and p99 with the slow clients
against the same without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
from dataclasses import dataclass, field

from redis import Redis

from bench.aio import LoopThread
from bench.http import READ_IDS, ROUTES
from bench.load import LoadResult, run_wrk
from bench.seed import seed_sessions, write_ids
from bench.stack import Stack, service_env
from devstack.processes import Proc, wait_for

SLOW_CONNECTIONS = 200
LINE_EVERY_SECONDS = 2.0
SIDES = ("alone", "slow")


class SlowHeaders:
    """`count` connections, each sending `GET /healthz` and then one header line every 2 s."""

    def __init__(self, loop: LoopThread, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.open = 0
        self.connects = 0
        self.stopping = threading.Event()
        self.held: list[int] = []  # how many were open, sampled while wrk ran
        for _ in range(count):
            loop.spawn(self._hold())

    async def _hold(self) -> None:
        while not self.stopping.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            self.open += 1
            self.connects += 1
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n")
                await writer.drain()
                while not self.stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        if not await asyncio.wait_for(reader.read(65536), LINE_EVERY_SECONDS):
                            break  # the server hung up: connect again
                        continue
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
            except OSError:
                pass
            finally:
                self.open -= 1
                writer.close()

    def sample_while(self, running: threading.Event) -> threading.Thread:
        """Record how many are open, every 0.2 s, until `running` is cleared."""

        def sample() -> None:
            while running.is_set():
                self.held.append(self.open)
                time.sleep(0.2)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        return thread


@dataclass
class SlowResult:
    """wrk rounds of GET alone and beside the slow clients, and how many slow clients were held."""

    runs: dict[str, list[LoadResult]] = field(default_factory=lambda: {side: [] for side in SIDES})
    held_min: int = 0
    held_mean: float = 0.0
    connects_per_second: float = 0.0

    def rps(self, side: str) -> float:
        return max(r.rps for r in self.runs[side])

    def p99(self, side: str) -> float:
        return min(r.percentile(99) for r in self.runs[side])


def measure_slow_clients(
    stack: Stack, redis_proc: Proc, sandbox_url: str, *, seconds: float, conns: int, rounds: int
) -> SlowResult:
    """`rounds` rounds of each side, alternating which goes first."""
    env = service_env(redis_proc.url, sandbox_url)
    web = stack.gunicorn("app:create_app()", env, "web-slow")
    redis = Redis.from_url(redis_proc.url)
    out = stack.root / "wrk"
    ids = write_ids(seed_sessions(redis, READ_IDS), out / "slow-read-ids.txt")
    route = ROUTES["get"]
    loop = LoopThread()
    result = SlowResult()
    held, connects, measured = [], 0, 0.0
    try:
        run_wrk(web.url, name="warmup-slow", out_dir=out, seconds=2, conns=conns, path="/healthz")
        for i in range(rounds):
            for side in SIDES[i % 2 :] + SIDES[: i % 2]:
                slow = SlowHeaders(loop, web.port, SLOW_CONNECTIONS) if side == "slow" else None
                if slow is not None:
                    wait_for(lambda s=slow: s.open >= SLOW_CONNECTIONS, 30, "the slow clients to connect")
                running = threading.Event()
                running.set()
                sampler = slow.sample_while(running) if slow is not None else None
                started, connected = time.monotonic(), slow.connects if slow is not None else 0
                r = run_wrk(
                    web.url,
                    name=f"get-{side}-{i}",
                    out_dir=out,
                    seconds=seconds,
                    conns=conns,
                    path=route.service_path,
                    ids_file=ids,
                    auth=route.auth,
                    server_pid=web.popen.pid,
                )
                running.clear()
                if slow is not None and sampler is not None:
                    sampler.join()
                    measured += time.monotonic() - started
                    connects += slow.connects - connected
                    slow.stopping.set()
                    held += slow.held
                if r.failed:
                    raise RuntimeError(f"{r.name}: errors {r.errors}; see {out}")
                result.runs[side].append(r)
                print(f"  GET {side}: {r.rps:,.0f} req/s, p99 {r.percentile(99):.1f} ms")
        result.held_min = min(held)
        result.held_mean = statistics.fmean(held)
        result.connects_per_second = connects / measured if measured else 0.0
        print(
            f"  slow clients held: min {result.held_min}, mean {result.held_mean:.0f}; "
            f"{result.connects_per_second:.0f} new connections/s (cut off at the header deadline)"
        )
        return result
    finally:
        loop.close()
        redis.flushdb()
        redis.close()
        stack.stop(web)
