"""Live streams: 1,000 open at once; the time from the worker's commit of a change to its event at the
client; and GET /v1/sessions/{id} under wrk beside them, against the same without them.

Every stream is a real HTTP/1.1 connection to gunicorn (chunked), parsed as Server-Sent Events by an
asyncio client in this process. A sample of the sessions is real (sandbox 428s stored through the API):
their tokens are submitted one at a time, a real `python -m worker` resumes each at the sandbox, and its
commit's `updated_at` (the worker's clock, this machine's) is compared with when the `succeeded` event
arrives here.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime

import requests
from redis import Redis

from bench.aio import LoopThread
from bench.http import READ_IDS, ROUTES
from bench.load import LoadResult, run_wrk
from bench.procs import memory_kib, tree
from bench.seed import CLIENT_SECRET, seed_sessions, write_ids
from bench.stack import Stack, paused_session, service_env
from devstack.processes import Proc, wait_for

PACE_SECONDS = 0.05  # between the sampled submissions: the worker is never the queue being measured
OPEN_BATCH = 100
SIDES = ("alone", "streams")


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Arrival:
    """One event as it reached a client: the version's status, when it was made, when it arrived."""

    session_id: str
    status: str
    made_at: float
    arrived_at: float


class StreamClients:
    """One SSE connection per session, each parsed as events arrive."""

    def __init__(self, loop: LoopThread, port: int) -> None:
        self.loop, self.port = loop, port
        self.arrivals: list[Arrival] = []
        self.opened: set[str] = set()  # sessions whose stream has sent its first event
        self.refused: list[str] = []
        self.connected = 0
        self.answered = 0

    def open(self, session_id: str, secret: str) -> None:
        self.loop.spawn(self._follow_or_note(session_id, secret))

    async def _follow_or_note(self, session_id: str, secret: str) -> None:
        try:
            await self._follow(session_id, secret)
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            if session_id not in self.opened:
                self.refused.append(f"{session_id}: {exc!r}")

    async def _follow(self, session_id: str, secret: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.connected += 1
        try:
            writer.write(
                f"GET /v1/sessions/{session_id}/stream HTTP/1.1\r\nHost: bench\r\n"
                f"Authorization: Bearer {secret}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            await writer.drain()
            status = await reader.readline()
            self.answered += 1
            if b" 200 " not in status:
                self.refused.append(f"{session_id}: {status!r}")
                return
            while await reader.readline() not in (b"\r\n", b""):
                pass  # the answer's headers
            pending = ""
            while size_line := await reader.readline():  # chunked transfer coding
                size = int(size_line.strip() or b"0", 16)
                if size == 0:
                    return
                pending += (await reader.readexactly(size + 2))[:-2].decode()
                *blocks, pending = pending.split("\n\n")
                for block in blocks:
                    self._block(session_id, block)
        finally:
            writer.close()

    def _block(self, session_id: str, block: str) -> None:
        data = next((line[6:] for line in block.split("\n") if line.startswith("data: ")), None)
        if data is None:
            return  # a heartbeat or a retry hint
        arrived = time.time()
        session = json.loads(data)
        self.arrivals.append(Arrival(session_id, session["status"], _epoch(session["updated_at"]), arrived))
        self.opened.add(session_id)


@dataclass
class StreamResult:
    """GET rounds alone and beside the streams; commit-to-client latencies; memory of the web tier."""

    streams: int
    runs: dict[str, list[LoadResult]] = field(default_factory=lambda: {side: [] for side in SIDES})
    worker_ms: list[float] = field(default_factory=list)  # the worker's commit (succeeded) to the client
    web_ms: list[float] = field(default_factory=list)  # the web's commit (submitted) to the client
    web_kib_per_stream: float = 0.0

    def rps(self, side: str) -> float:
        return max(r.rps for r in self.runs[side])

    def p99(self, side: str) -> float:
        return min(r.percentile(99) for r in self.runs[side])


def _rss_kib(pid: int) -> int:
    return sum(memory_kib(p)["rss"] for p in tree(pid))


def measure_streams(
    stack: Stack,
    redis_proc: Proc,
    sandbox: Proc,
    *,
    streams: int,
    samples: int,
    seconds: float,
    conns: int,
    rounds: int,
) -> StreamResult:
    """GET alone; `streams` streams opened; GET beside them; `samples` resumes followed; streams closed."""
    env = service_env(redis_proc.url, sandbox.url)
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    web = stack.gunicorn("app:create_app()", env, "web-streams")
    workers = stack.workers(1, env)
    redis = Redis.from_url(redis_proc.url)
    http = requests.Session()
    out = stack.root / "wrk"
    result = StreamResult(streams)
    loop = LoopThread()
    route = ROUTES["get"]

    def get_round(side: str, i: int) -> None:
        r = run_wrk(
            web.url,
            name=f"get-{side}-{i}",
            out_dir=out,
            seconds=seconds,
            conns=conns,
            path=route.service_path,
            ids_file=read_ids,
            auth=route.auth,
            server_pid=web.popen.pid,
        )
        if r.failed:
            raise RuntimeError(f"{r.name}: errors {r.errors}; see {out}")
        result.runs[side].append(r)
        print(f"  GET {side}: {r.rps:,.0f} req/s, p99 {r.percentile(99):.1f} ms")

    try:
        sampled = [paused_session(http, web.url, sandbox.url)[1] for _ in range(samples)]
        idle = seed_sessions(redis, streams - samples)
        read_ids = write_ids(seed_sessions(redis, READ_IDS), out / "streams-read-ids.txt")
        run_wrk(web.url, name="warmup-streams", out_dir=out, seconds=2, conns=conns, path="/healthz")
        get_round("alone", 0)
        rss_before = _rss_kib(web.popen.pid)
        clients = StreamClients(loop, web.port)
        secrets = [(session_id, CLIENT_SECRET) for session_id in idle]
        secrets += [(s["id"], s["client_secret"]) for s in sampled]
        for start in range(0, streams, OPEN_BATCH):  # clients arrive over a moment, not in one instant
            for session_id, secret in secrets[start : start + OPEN_BATCH]:
                clients.open(session_id, secret)
            count = min(streams, start + OPEN_BATCH)
            try:
                wait_for(lambda n=count: len(clients.opened) + len(clients.refused) >= n, 60, "streams")
            except TimeoutError:
                raise RuntimeError(
                    f"{len(clients.opened)} of {count} streams open, {len(clients.refused)} refused "
                    f"({clients.refused[:3]}); {clients.connected} connected, {clients.answered} answered"
                ) from None
        if clients.refused:
            raise RuntimeError(f"{len(clients.refused)} streams refused, e.g. {clients.refused[0]}")
        result.web_kib_per_stream = (_rss_kib(web.popen.pid) - rss_before) / streams
        print(f"  {streams} streams open; web tier RSS +{result.web_kib_per_stream:.1f} KiB per stream")
        get_round("streams", 0)
        for s in sampled:
            r = http.post(
                f"{web.url}/v1/sessions/{s['id']}/token",
                json={"token": "111111"},
                headers={"Authorization": f"Bearer {s['client_secret']}"},
                timeout=10,
            )
            if r.status_code != 202:
                raise RuntimeError(f"token POST answered {r.status_code}: {r.text}")
            time.sleep(PACE_SECONDS)
        done = {s["id"] for s in sampled}

        def all_succeeded() -> bool:
            return {a.session_id for a in clients.arrivals if a.status == "succeeded"} >= done

        wait_for(all_succeeded, 60, "every sampled session's succeeded event")
        for a in clients.arrivals:
            if a.session_id in done and a.status in ("submitted", "succeeded"):
                latency = (a.arrived_at - a.made_at) * 1000
                (result.worker_ms if a.status == "succeeded" else result.web_ms).append(latency)
        for i in range(1, rounds):  # the other order: with the streams first, then alone
            get_round("streams", i)
        loop.close()
        loop = LoopThread()  # the streams' sockets are closed; the next rounds run without them
        for i in range(1, rounds):
            get_round("alone", i)
        return result
    finally:
        loop.close()
        http.close()
        redis.flushdb()
        redis.close()
        stack.stop(*workers, web)
