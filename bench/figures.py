"""Measured results turned into the figures of bench/results.json: value, baseline, ratio, target, met."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bench import paired
from bench.dispatch import DispatchResult
from bench.http import TARGETS, Pair
from bench.memory import MemoryResult
from bench.slow import SLOW_CONNECTIONS, SlowResult
from bench.streams import StreamResult
from bench.telemetry import TARGET as TELEMETRY_TARGET
from bench.telemetry import TelemetryResult
from bench.throughput import ThroughputResult
from bench.webhooks import WEBHOOK_CREATE_MIN_RATIO, WEBHOOK_DISPATCH_MAX_RATIO, WebhookBenchResult

MAX_SESSION_BYTES = 2048
DISPATCH_MAX_RATIO = 2.0
THROUGHPUT_MIN_RATIO = 0.8
WORKER_MEMORY_MAX_RATIO = 1.5
BESIDE_MIN_RATIO = 0.8  # GET requests/s beside slow clients or open streams, over the same alone
SLOW_P99_MAX_RATIO = 2.0
STREAM_P50_MAX_MS, STREAM_P99_MAX_MS = 20.0, 200.0
_REPORT = (None, None, "report", None)  # a figure only reported: no baseline, ratio, target or verdict
ROUTES = {
    "get": "GET /v1/sessions/{id}",
    "token": "POST /v1/sessions/{id}/token",
    "create": "POST /v1/sessions",
}


@dataclass
class Figure:
    """One row of the results: `met` is None where the figure is only reported."""

    name: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    target: str
    met: bool | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of `values`."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _r(value: float, digits: int = 2) -> float:
    return round(value, digits)


def http_figures(pairs: list[Pair]) -> list[Figure]:
    """Throughput (with its target) and p99 (reported) of each route beside its bare-Flask baseline."""
    out = []
    for pair in pairs:
        route, target = ROUTES[pair.figure], f">= {TARGETS[pair.figure]}x baseline"
        base_rps, base_p99 = _r(pair.rps("baseline"), 0), pair.p99("baseline")
        out.append(
            Figure(
                f"{route} requests/s at saturation",
                _r(pair.rps("service"), 0),
                "req/s",
                base_rps,
                _r(pair.ratio()),
                target,
                pair.met,
            )
        )
        p99 = pair.p99("service")
        out.append(
            Figure(
                f"{route} p99 at saturation",
                _r(p99, 1),
                "ms",
                _r(base_p99, 1),
                _r(p99 / base_p99),
                "report",
                None,
            )
        )
        cpu, base_cpu = pair.cpu_ms("service"), pair.cpu_ms("baseline")
        out.append(
            Figure(
                f"{route} server CPU per request",
                _r(cpu, 3),
                "ms",
                _r(base_cpu, 3),
                _r(cpu / base_cpu),
                "report",
                None,
            )
        )
    return out


def dispatch_figures(results: dict[str, DispatchResult]) -> list[Figure]:
    """p50 (target: within 2x of RQ's own) and p99 of token-accepted-to-PATCH."""
    out = []
    for d in results.values():
        suffix = ""
        p50, base50 = percentile(d.service_ms, 50), percentile(d.baseline_ms, 50)
        p99, base99 = percentile(d.service_ms, 99), percentile(d.baseline_ms, 99)
        out.append(
            Figure(
                f"dispatch latency p50, token accepted to PATCH received, idle system{suffix}",
                _r(p50, 1),
                "ms",
                _r(base50, 1),
                _r(p50 / base50),
                f"<= {DISPATCH_MAX_RATIO:g}x baseline",
                p50 / base50 <= DISPATCH_MAX_RATIO,
            )
        )
        out.append(
            Figure(
                f"dispatch latency p99, idle system{suffix}",
                _r(p99, 1),
                "ms",
                _r(base99, 1),
                _r(p99 / base99),
                "report",
                None,
            )
        )
    return out


def throughput_figures(results: list[ThroughputResult]) -> list[Figure]:
    """Sessions resumed per second against a 2 s sandbox, beside the ideal (calls in flight / 2 s); the
    target is on one process at the highest concurrency measured, the others are reported."""
    top = max((r.concurrency for r in results if r.processes == 1), default=None)
    out = []
    for r in results:
        ratio = r.per_second / r.ideal
        model = " (today's model)" if r.processes > 1 else ""
        targeted = r.processes == 1 and r.concurrency == top
        out.append(
            Figure(
                f"resume throughput, {r.label}{model}, sandbox 2 s",
                _r(r.per_second),
                "sessions/s",
                _r(r.ideal),
                _r(ratio),
                f">= {THROUGHPUT_MIN_RATIO}x ideal" if targeted else "report",
                ratio >= THROUGHPUT_MIN_RATIO and r.succeeded == r.sessions if targeted else None,
            )
        )
    return out


def memory_figures(results: list[MemoryResult]) -> list[Figure]:
    """Redis bytes per waiting session: absolute, at most 2 KiB."""
    out = []
    for m in results:
        suffix = "" if m.variant == "redis-memory" else " (what-if: hash-max-listpack-value 256)"
        for count, per in m.per_session_bytes.items():
            out.append(
                Figure(
                    f"Redis memory per waiting session at {count:,} sessions{suffix}",
                    _r(per, 0),
                    "B",
                    None,
                    None,
                    f"<= {MAX_SESSION_BYTES} B",
                    per <= MAX_SESSION_BYTES,
                )
            )
    return out


def worker_memory_figures(results: list[ThroughputResult]) -> list[Figure]:
    """Worker PSS: one process at each concurrency against the concurrency-1 process (target at the
    highest), what one more call in flight costs, and today's model (N processes) in total."""
    single = {r.concurrency: r for r in results if r.processes == 1}
    one = single.get(1)
    if one is None:
        return []
    mib = 1024
    out = [
        Figure(
            "worker memory, one process at concurrency 1, idle, PSS",
            _r(one.pss_idle_kib / mib, 1),
            "MiB",
            None,
            None,
            "report",
            None,
        ),
    ]
    top = max(single)
    for c, r in sorted(single.items()):
        ratio = r.pss_peak_kib / one.pss_peak_kib
        targeted = c == top and c > 1
        out.append(
            Figure(
                f"worker memory, one process at concurrency {c}, peak PSS with its calls in flight",
                _r(r.pss_peak_kib / mib, 1),
                "MiB",
                _r(one.pss_peak_kib / mib, 1),
                _r(ratio),
                f"<= {WORKER_MEMORY_MAX_RATIO:g}x concurrency 1" if targeted else "report",
                ratio <= WORKER_MEMORY_MAX_RATIO if targeted else None,
            )
        )
    if top > 1:
        per_call = (single[top].pss_peak_kib - one.pss_peak_kib) / (top - 1)
        out.append(
            Figure(
                "worker memory per call in flight (one process; baseline: a process per call)",
                _r(per_call / mib, 2),
                "MiB",
                _r(one.pss_peak_kib / mib, 1),
                None,
                "report",
                None,
            )
        )
    for r in results:
        if r.processes > 1:
            same = single.get(r.processes)
            out.append(
                Figure(
                    f"worker memory, {r.label} (today's model), total peak PSS",
                    _r(r.pss_peak_kib / mib, 1),
                    "MiB",
                    _r(same.pss_peak_kib / mib, 1) if same else None,
                    _r(r.pss_peak_kib / same.pss_peak_kib) if same else None,
                    "report",
                    None,
                )
            )
    return out


def webhook_figures(r: WebhookBenchResult) -> list[Figure]:
    """Webhooks on beside webhooks off, in the same run: dispatch latency, create throughput, memory."""
    on50, off50 = percentile(r.dispatch_ms["on"], 50), percentile(r.dispatch_ms["off"], 50)
    on99, off99 = percentile(r.dispatch_ms["on"], 99), percentile(r.dispatch_ms["off"], 99)
    # Each side's own median over the paired rounds; the ratios are the medians of the rounds' ratios.
    on_rps, off_rps = (paired.median(r.create, side, paired.rps) for side in ("on", "off"))
    rps_ratio = paired.median_ratio(r.create, "on", "off", paired.rps)
    cpu_on, cpu_off = (paired.median(r.create, side, paired.cpu_ms) for side in ("on", "off"))
    mem_on, mem_off = r.memory_bytes["on"], r.memory_bytes["off"]
    return [
        Figure(
            "dispatch latency p50 with webhooks on (baseline: off), idle system",
            _r(on50, 1),
            "ms",
            _r(off50, 1),
            _r(on50 / off50),
            f"<= {WEBHOOK_DISPATCH_MAX_RATIO:g}x webhooks off",
            on50 / off50 <= WEBHOOK_DISPATCH_MAX_RATIO,
        ),
        Figure(
            "dispatch latency p99 with webhooks on (baseline: off)",
            _r(on99, 1),
            "ms",
            _r(off99, 1),
            _r(on99 / off99),
            "report",
            None,
        ),
        Figure(
            f"POST /v1/sessions requests/s at saturation with webhooks on (baseline: off; median of "
            f"{len(r.create)} paired rounds)",
            _r(on_rps, 0),
            "req/s",
            _r(off_rps, 0),
            _r(rps_ratio),
            f">= {WEBHOOK_CREATE_MIN_RATIO:g}x webhooks off",
            rps_ratio >= WEBHOOK_CREATE_MIN_RATIO,
        ),
        Figure(
            "POST /v1/sessions server CPU per request with webhooks on (baseline: off)",
            _r(cpu_on, 3),
            "ms",
            _r(cpu_off, 3),
            _r(paired.median_ratio(r.create, "on", "off", paired.cpu_ms)),
            "report",
            None,
        ),
        Figure(
            "Redis memory per waiting session with webhooks on, its first event pending (baseline: off)",
            _r(mem_on, 0),
            "B",
            _r(mem_off, 0),
            _r(mem_on / mem_off),
            "report",
            None,
        ),
    ]


def _get_beside(
    what: str, rps: float, base_rps: float, p99: float, base_p99: float, p99_max: float | None
) -> list[Figure]:
    """GET requests/s (target: at least BESIDE_MIN_RATIO of alone) and p99 beside `what`, against the same
    run alone; p99 has a target only where `p99_max` is given."""
    return [
        Figure(
            f"{ROUTES['get']} requests/s beside {what}",
            _r(rps, 0),
            "req/s",
            _r(base_rps, 0),
            _r(rps / base_rps),
            f">= {BESIDE_MIN_RATIO}x alone",
            rps / base_rps >= BESIDE_MIN_RATIO,
        ),
        Figure(
            f"{ROUTES['get']} p99 beside {what}",
            _r(p99, 1),
            "ms",
            _r(base_p99, 1),
            _r(p99 / base_p99),
            "report" if p99_max is None else f"<= {p99_max:g}x alone",
            None if p99_max is None else p99 / base_p99 <= p99_max,
        ),
    ]


def slow_client_figures(r: SlowResult) -> list[Figure]:
    """GET requests/s and p99 beside the slow-header clients, against the same run alone."""
    return _get_beside(
        f"{SLOW_CONNECTIONS} slow-header clients",
        r.rps("slow"),
        r.rps("alone"),
        r.p99("slow"),
        r.p99("alone"),
        SLOW_P99_MAX_RATIO,
    )


def stream_figures(r: StreamResult) -> list[Figure]:
    """Commit-to-client latency with every stream open, and GET beside the open streams."""
    n = f"{r.streams:,} open streams"
    p50, p99 = percentile(r.worker_ms, 50), percentile(r.worker_ms, 99)
    rps, base_rps = r.rps("streams"), r.rps("alone")
    p99_get, base_p99_get = r.p99("streams"), r.p99("alone")
    return [
        Figure(
            f"live event latency p50, worker's commit to the client, {n}",
            _r(p50, 1),
            "ms",
            None,
            None,
            f"<= {STREAM_P50_MAX_MS:g} ms",
            p50 <= STREAM_P50_MAX_MS,
        ),
        Figure(
            f"live event latency p99, worker's commit to the client, {n}",
            _r(p99, 1),
            "ms",
            None,
            None,
            f"<= {STREAM_P99_MAX_MS:g} ms",
            p99 <= STREAM_P99_MAX_MS,
        ),
        Figure(
            f"live event latency p50, web's commit (token accepted) to the client, {n}",
            _r(percentile(r.web_ms, 50), 1),
            "ms",
            None,
            None,
            "report",
            None,
        ),
        *_get_beside(n, rps, base_rps, p99_get, base_p99_get, None),
        Figure("web tier memory per open stream (RSS)", _r(r.web_kib_per_stream, 1), "KiB", *_REPORT),
    ]


def telemetry_figures(result: TelemetryResult) -> list[Figure]:
    """Each API figure and dispatch p50 with metrics and JSON logs on, beside the same with them off (the
    lines as text, nothing counted); and beside the service with no line per request at all (report)."""
    out = []
    for pair in result.pairs:
        route, rounds = ROUTES[pair.figure], len(pair.rounds)
        ratio = pair.rps_ratio("on", "off")
        out.append(
            Figure(
                f"{route} requests/s, metrics and JSON logs on (median of {rounds} paired rounds)",
                _r(pair.rps("on"), 0),
                "req/s",
                _r(pair.rps("off"), 0),
                _r(ratio),
                f">= {TELEMETRY_TARGET}x off",
                ratio >= TELEMETRY_TARGET,
            )
        )
        cpu = f"{route} server CPU per request"
        bare = "the defaults against no line per request and no metrics"
        for name, against, value, base, unit, digits in (
            (f"{cpu}, metrics and JSON logs on", "off", pair.cpu_ms, pair.cpu_ratio, "ms", 3),
            (f"{route} requests/s, {bare}", "bare", pair.rps, pair.rps_ratio, "req/s", 0),
            (f"{cpu}, {bare}", "bare", pair.cpu_ms, pair.cpu_ratio, "ms", 3),
        ):
            shown = (_r(value("on"), digits), unit, _r(value(against), digits), _r(base("on", against)))
            out.append(Figure(name, *shown, "report", None))
    on, off = (percentile(result.dispatch[side], 50) for side in ("on", "off"))
    out.append(
        Figure(
            "dispatch latency p50, metrics and JSON logs on",
            _r(on, 1),
            "ms",
            _r(off, 1),
            _r(on / off),
            f"<= {1 / TELEMETRY_TARGET:.2f}x off ({TELEMETRY_TARGET}x the speed)",
            off / on >= TELEMETRY_TARGET,
        )
    )
    return out
