"""What operating it costs: the API figures and dispatch latency with metrics and JSON logs on, against
the same service with them off, in one run.

  on:   METRICS_ENABLED=true, LOG_FORMAT=json, WEB_ACCESS_LOG=1: the defaults (counters in
        PROMETHEUS_MULTIPROC_DIR, a JSON line per request, a line per Belvo answer in the worker)
  off:  METRICS_ENABLED=false, LOG_FORMAT=text, WEB_ACCESS_LOG=1: nothing counted, the same lines as text
        (as the service logged before: gunicorn's access log wrote a text line per request)
  bare: METRICS_ENABLED=false, LOG_FORMAT=text, WEB_ACCESS_LOG=0: not even a line per request; reported
        beside, so the line's own cost is known (README, Operating it: WEB_ACCESS_LOG)

The three gunicorns serve from the same Redis and are loaded *at the same time*, each by a wrk of its
own with half the HTTP figures' connections: whatever else this shared 2-core machine does in a round
slows all three alike, so each round's ratios are paired (bench/paired.py). A figure is the median over
the rounds of that round's ratio. Tracing stays off (it is off unless OTEL_* asks for it). Dispatch
latency: a web and a worker per side (on, off), samples alternating between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench import paired
from bench.dispatch import measure_dispatch_sides
from bench.http import ROUTES, HttpBench
from bench.paired import MIN_ROUNDS, Round
from bench.stack import Stack
from devstack.processes import Proc

ON = {"METRICS_ENABLED": "true", "LOG_FORMAT": "json", "WEB_ACCESS_LOG": "1"}
OFF = {"METRICS_ENABLED": "false", "LOG_FORMAT": "text", "WEB_ACCESS_LOG": "1"}
BARE = {"METRICS_ENABLED": "false", "LOG_FORMAT": "text", "WEB_ACCESS_LOG": "0"}
CONFIGS = {"on": ON, "off": OFF, "bare": BARE}
SIDES = tuple(CONFIGS)
TARGET = 0.95  # on over off, for requests/s; off over on for latency
# Sessions made for each token run: three servers share the machine, so each answers a third or so of
# what one alone does (bench.http.MAX_TOKEN_RPS); a run that outran them would fail, not mislead.
SHARED_MAX_TOKEN_RPS = 1200


@dataclass
class TelemetryPair:
    """One API figure: per round, the three sides' runs, made at the same time."""

    figure: str
    rounds: list[Round] = field(default_factory=list)

    def rps(self, side: str) -> float:
        return paired.median(self.rounds, side, paired.rps)

    def cpu_ms(self, side: str) -> float:
        return paired.median(self.rounds, side, paired.cpu_ms)

    def rps_ratio(self, side: str, against: str) -> float:
        """Median over the rounds of `side`'s req/s over `against`'s in the same round."""
        return paired.median_ratio(self.rounds, side, against, paired.rps)

    def cpu_ratio(self, side: str, against: str) -> float:
        """Median over the rounds of `side`'s server CPU per request over `against`'s in the same round."""
        return paired.median_ratio(self.rounds, side, against, paired.cpu_ms)


@dataclass
class TelemetryResult:
    """The API pairs, and dispatch latency with each configuration."""

    pairs: list[TelemetryPair]
    dispatch: dict[str, list[float]]  # dispatch latency samples (ms), by side


class _Sides(HttpBench):
    """HttpBench's seeding and wrk runs, with the service three times (on, off, bare) in place of the
    baseline."""

    def _servers(self, stack: Stack, env: dict[str, str]) -> dict[str, Proc]:
        return {
            side: stack.gunicorn("app:create_app()", {**env, **over}, f"web-telemetry-{side}")
            for side, over in CONFIGS.items()
        }


def measure_telemetry(
    stack: Stack, redis: Proc, sandbox: Proc, *, seconds: float, conns: int, rounds: int, samples: int
) -> TelemetryResult:
    """Every API figure, `rounds` rounds (at least MIN_ROUNDS) of the three sides loaded together; then
    dispatch latency, on and off alternating."""
    bench = _Sides(stack, redis.url, sandbox.url, seconds, conns)
    pairs = []
    half = max(1, conns // 2)  # each side's wrk connections
    try:
        for figure in ROUTES:
            pair = TelemetryPair(figure)
            for i in range(max(MIN_ROUNDS, rounds)):
                # Sessions first (a token run needs fresh ones), then the three wrk runs at once.
                starts = {
                    s: bench.prepare(figure, s, f"telemetry-{i}", conns=half, fresh_rps=SHARED_MAX_TOKEN_RPS)
                    for s in SIDES
                }
                pair.rounds.append(paired.run_together(starts))
                print(f"  {figure} round {i}: {paired.describe(pair.rounds[-1])}")
            pairs.append(pair)
    finally:
        stack.stop(*bench.procs.values())
        bench.redis.flushdb()
        bench.redis.close()
    dispatch = measure_dispatch_sides(stack, redis, sandbox, samples=samples, sides={"on": ON, "off": OFF})
    return TelemetryResult(pairs, dispatch)
