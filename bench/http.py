"""HTTP throughput at saturation: each service route and its bare-Flask baseline, alternated in one run.

No RQ worker runs during this phase, so POST /token's resume jobs (and the baseline's no-op jobs)
just accumulate in their queues: the figure is the web tier's alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from redis import Redis

from bench.http_profile import HttpProfile, profile_pair
from bench.load import LoadResult, run_wrk
from bench.seed import CLIENT_SECRET, seed_sessions, write_ids
from bench.stack import API_KEY, Stack, service_env
from devstack.processes import Proc

TOKEN_BODY = json.dumps({"token": "111111"})
# The sandbox's 428 body (list shape); wrk.lua puts a fresh Belvo session id in place of {belvo}.
CREATE_BODY = json.dumps(
    {
        "token_required": [
            {
                "code": "token_required",
                "message": "A MFA token is required by the institution to login",
                "request_id": "0123456789abcdef0123456789abcdef",
                "session": "{belvo}",
                "expiry": 9600,
                "link": "5f5a8d1e-2b8e-4f63-9a7c-2f0a3d6c9b11",
                "token_generation_data": {
                    "instructions": "Please enter the numeric code sent to your phone",
                    "type": "numeric",
                    "value": "",
                    "expects_user_input": True,
                },
            }
        ]
    }
)
READ_IDS = 1000
# The most token POSTs per second we expect from one host; sessions for each run are pre-made for it.
MAX_TOKEN_RPS = 2500
TARGETS = {"get": 0.9, "token": 0.7, "create": 0.8}  # service req/s over baseline req/s, at least
SIDES = ("service", "baseline")


@dataclass(frozen=True)
class Route:
    """One figure's request on each side: the service's route and the baseline's."""

    method: str
    service_path: str
    baseline_path: str
    body: str = ""
    auth: str = ""  # the service's Authorization header; the baseline takes none
    ids: str = ""  # "read": rotate the seeded ids (both sides); "fresh": one new session per request


ROUTES = {
    "get": Route("GET", "/v1/sessions/{id}", "/hgetall/{id}", auth=f"Bearer {CLIENT_SECRET}", ids="read"),
    "token": Route(
        "POST", "/v1/sessions/{id}/token", "/enqueue", TOKEN_BODY, f"Bearer {CLIENT_SECRET}", ids="fresh"
    ),
    "create": Route("POST", "/v1/sessions", "/hset", CREATE_BODY, f"Bearer {API_KEY}"),
}


@dataclass
class Pair:
    """One figure: every round of each side. Best req/s and lowest p99 are the least disturbed rounds."""

    figure: str
    runs: dict[str, list[LoadResult]] = field(default_factory=dict)
    profile: HttpProfile | None = None

    def rps(self, side: str) -> float:
        return max(r.rps for r in self.runs[side])

    def p99(self, side: str) -> float:
        return min(r.percentile(99) for r in self.runs[side])

    def cpu_ms(self, side: str) -> float:
        """Server CPU per request, least of the rounds: steadier than req/s on a shared machine."""
        return min(r.cpu_ms_per_request for r in self.runs[side])

    def steadiest(self, side: str) -> LoadResult:
        """The round with the lowest p99: the latency distribution the chart shows."""
        return min(self.runs[side], key=lambda r: r.percentile(99))

    def best(self, side: str) -> LoadResult:
        return max(self.runs[side], key=lambda r: r.rps)

    def ratio(self, side: str = "service") -> float:
        return self.rps(side) / self.rps("baseline")

    @property
    def met(self) -> bool:
        return self.ratio() >= TARGETS[self.figure]


class HttpBench:
    """The three gunicorn servers on one Redis, and one wrk run of any figure on any side."""

    def __init__(self, stack: Stack, redis_url: str, sandbox_url: str, seconds: float, conns: int) -> None:
        env = service_env(redis_url, sandbox_url)
        self.out = stack.root / "wrk"
        self.seconds, self.conns = seconds, conns
        self.redis = Redis.from_url(redis_url)
        self.procs = self._servers(stack, env)
        self.read_ids = write_ids(seed_sessions(self.redis, READ_IDS), self.out / "read-ids.txt")
        for name, proc in self.procs.items():  # first requests pay for lazy imports and connections
            run_wrk(
                proc.url, name=f"warmup-{name}", out_dir=self.out, seconds=2, conns=conns, path="/healthz"
            )

    def _servers(self, stack: Stack, env: dict[str, str]) -> dict[str, Proc]:
        """The gunicorns compared, by side: the service and the bare-Flask baseline."""
        return {
            "service": stack.gunicorn("app:create_app()", env, "web"),
            "baseline": stack.gunicorn("bench.baseline_app:create_app()", env, "baseline"),
        }

    def run(self, figure: str, side: str, label: str) -> LoadResult:
        """One bounded wrk run; any error answer or socket error fails the benchmark."""
        return self.prepare(figure, side, label)()

    def prepare(
        self, figure: str, side: str, label: str, conns: int | None = None, fresh_rps: int = MAX_TOKEN_RPS
    ) -> Callable[[], LoadResult]:
        """What `run` does, in two parts: the sessions the run needs are made now, and the wrk run itself
        is returned to be started later (so that runs made ready one by one can start together)."""
        route, proc = ROUTES[figure], self.procs[side]
        service = side != "baseline"  # every other side is the service, in some configuration
        ids_file, once = (self.read_ids, False) if route.ids == "read" else (None, False)
        fresh: list[str] = []
        if route.ids == "fresh" and service:
            fresh = seed_sessions(self.redis, int(fresh_rps * self.seconds))
            ids_file, once = write_ids(fresh, self.out / f"{figure}-{side}-{label}-ids.txt"), True

        def start() -> LoadResult:
            result = run_wrk(
                proc.url,
                name=f"{figure}-{side}-{label}",
                out_dir=self.out,
                seconds=self.seconds,
                conns=conns or self.conns,
                method=route.method,
                path=route.service_path if service else route.baseline_path,
                ids_file=ids_file,
                once=once,
                body=route.body,
                auth=route.auth if service else "",
                server_pid=proc.popen.pid,
            )
            if result.failed:
                raise RuntimeError(f"{result.name}: errors {result.errors}; see {self.out}")
            if fresh and result.requests > len(fresh):
                raise RuntimeError(f"{result.name} outran its {len(fresh)} sessions: raise MAX_TOKEN_RPS")
            return result

        return start


def measure_http(
    stack: Stack, redis_proc: Proc, sandbox_url: str, *, seconds: float, conns: int, rounds: int
) -> list[Pair]:
    """Every figure, `rounds` rounds of every side in rotating order; py-spy on each figure that misses."""
    bench = HttpBench(stack, redis_proc.url, sandbox_url, seconds, conns)
    pairs = []
    try:
        for figure in ROUTES:
            pair = Pair(figure, {side: [] for side in SIDES})
            for i in range(rounds):
                # Rotate which side goes first, so a drift in machine load hits all sides alike.
                for side in SIDES[i % 2 :] + SIDES[: i % 2]:
                    result = bench.run(figure, side, str(i))
                    pair.runs[side].append(result)
                    print(
                        f"  {result.name}: {result.rps:,.0f} req/s, p99 {result.percentile(99):.1f} ms, "
                        f"{result.cpu_ms_per_request:.2f} ms server CPU/request"
                    )
            if not pair.met:
                print(f"  {figure}: {pair.ratio():.2f}x the baseline, target {TARGETS[figure]}x: profiling")
                pair.profile = profile_pair(
                    lambda side, f=figure: bench.run(f, side, "profiled"),
                    bench.procs["service"],
                    bench.procs["baseline"],
                    stack.root / "profiles" / figure,
                )
            pairs.append(pair)
        return pairs
    finally:
        stack.stop(*bench.procs.values())
        # The queues hold thousands of jobs no worker will ever want: later phases start from empty.
        bench.redis.flushdb()
        bench.redis.close()
