"""What operating it costs: the API figures and dispatch latency with metrics and JSON logs on, against
the same service with them off, in one run.

  on:  METRICS_ENABLED=true, LOG_FORMAT=json, WEB_ACCESS_LOG=1 (the defaults: a JSON line per request,
       counters in PROMETHEUS_MULTIPROC_DIR, a line per Belvo answer in the worker)
  off: METRICS_ENABLED=false, LOG_FORMAT=text, WEB_ACCESS_LOG=0 (no counting, no line per request)

Both gunicorns serve from the same Redis, alternating round by round like the HTTP phase; tracing stays
off in both (it is off unless OTEL_* asks for it). Dispatch runs its idle-system samples with the web and
the worker in each configuration, one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.dispatch import DispatchResult, measure_dispatch
from bench.http import ROUTES, HttpBench
from bench.load import LoadResult
from bench.stack import Stack
from devstack.processes import Proc

ON = {"METRICS_ENABLED": "true", "LOG_FORMAT": "json", "WEB_ACCESS_LOG": "1"}
OFF = {"METRICS_ENABLED": "false", "LOG_FORMAT": "text", "WEB_ACCESS_LOG": "0"}
SIDES = ("on", "off")
TARGET = 0.95  # on over off, for requests/s; off over on for latency


@dataclass
class TelemetryPair:
    """One API figure, every round of each side."""

    figure: str
    runs: dict[str, list[LoadResult]] = field(default_factory=lambda: {side: [] for side in SIDES})

    def rps(self, side: str) -> float:
        return max(r.rps for r in self.runs[side])

    def cpu_ms(self, side: str) -> float:
        return min(r.cpu_ms_per_request for r in self.runs[side])

    def p99(self, side: str) -> float:
        return min(r.percentile(99) for r in self.runs[side])


@dataclass
class TelemetryResult:
    """The API pairs, and dispatch latency with each configuration."""

    pairs: list[TelemetryPair]
    dispatch: dict[str, DispatchResult]


class _OnOff(HttpBench):
    """HttpBench's seeding and wrk runs, with the service twice (on and off) in place of the baseline."""

    def _servers(self, stack: Stack, env: dict[str, str]) -> dict[str, Proc]:
        return {
            "on": stack.gunicorn("app:create_app()", {**env, **ON}, "web-telemetry-on"),
            "off": stack.gunicorn("app:create_app()", {**env, **OFF}, "web-telemetry-off"),
        }


def measure_telemetry(
    stack: Stack, redis: Proc, sandbox: Proc, *, seconds: float, conns: int, rounds: int, samples: int
) -> TelemetryResult:
    """Every API figure, `rounds` rounds (at least two) per side in rotating order; then dispatch, off
    then on."""
    bench = _OnOff(stack, redis.url, sandbox.url, seconds, conns)
    pairs = []
    try:
        for figure in ROUTES:
            pair = TelemetryPair(figure)
            # Two rounds at least, so each side goes first once: the first run of a figure pays for
            # what its server does lazily (connections, labelled children), which would bias a ratio.
            for i in range(max(2, rounds)):
                for side in SIDES[i % 2 :] + SIDES[: i % 2]:
                    result = bench.run(figure, side, f"telemetry-{i}")
                    pair.runs[side].append(result)
                    print(
                        f"  {figure} {side}: {result.rps:,.0f} req/s, p99 {result.percentile(99):.1f} ms, "
                        f"{result.cpu_ms_per_request:.2f} ms server CPU/request"
                    )
            pairs.append(pair)
    finally:
        stack.stop(*bench.procs.values())
        bench.redis.flushdb()
        bench.redis.close()
    dispatch = {}
    for side, env in (("off", OFF), ("on", ON)):
        dispatch[side] = measure_dispatch(stack, redis, sandbox, samples=samples, env_over=env)
    return TelemetryResult(pairs, dispatch)
