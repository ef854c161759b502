"""`python -m bench [--quick] [--only PHASES]`: every figure beside its baseline, in one run.

Writes bench/results.json, bench/RESULTS.md and bench/latency.png (with --only: under bench/out/partial/).
Scratch files (logs, wrk summaries, profiles) go to bench/out/. Every process started is stopped at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import figures as fig
from bench.ack import ack_figures, measure_ack
from bench.aio import raise_open_files_limit
from bench.dispatch import measure_dispatch
from bench.http import measure_http
from bench.load import BenchSetupError, ensure_wrk
from bench.machine import machine_info
from bench.memory import measure_memory
from bench.paired import MIN_ROUNDS as PAIRED_MIN_ROUNDS
from bench.profile import PY_SPY
from bench.report import Run, write_all
from bench.slow import measure_slow_clients
from bench.stack import WEB_CONNECTIONS, WEB_WORKERS, running, service_env
from bench.streams import measure_streams
from bench.telemetry import measure_telemetry
from bench.throughput import measure_throughput
from bench.webhooks import measure_webhooks

HERE = Path(__file__).resolve().parent
PHASES = ("http", "slow", "streams", "dispatch", "throughput", "memory", "webhooks", "telemetry", "ack")


@dataclass(frozen=True)
class Plan:
    """How long and how many: the full run stays under ~20 minutes on 2 cores."""

    seconds: float = 10
    conns: int = 32
    rounds: int = 2
    dispatch_samples: int = 200
    # One worker process at each WORKER_CONCURRENCY, then today's model: N processes at concurrency 1.
    concurrency: tuple[int, ...] = (1, 8, 32, 128)
    processes: tuple[int, ...] = (8, 32, 128)
    sessions: int = 256
    memory_counts: tuple[int, ...] = (10_000, 100_000)
    streams: int = 1000
    stream_samples: int = 200
    ack_samples: int = 300


QUICK = Plan(
    seconds=3,
    rounds=1,
    dispatch_samples=30,
    concurrency=(1, 8, 128),
    processes=(8,),
    sessions=128,
    memory_counts=(1_000, 10_000),
    stream_samples=50,
    ack_samples=40,
)
# One py-spy profile of a worker at work: at concurrency 8 (4 calls/s) py-spy's own cost stays small, and
# out of the rows with a target.
PROFILED_CONCURRENCY = 8


def _phase(name: str, started: float) -> None:
    print(f"\n== {name} (t+{time.monotonic() - started:.0f}s)", flush=True)


def run(plan: Plan, phases: tuple[str, ...], out_dir: Path, mode: str) -> Run:
    """Measure the chosen phases; processes live only inside this call."""
    started = time.monotonic()
    scratch = HERE / "out" / time.strftime("run-%Y%m%d-%H%M%S")
    result = Run(machine={}, params={}, figures=[])
    with running(scratch) as stack:
        redis, sandbox = stack.redis(aof=True), stack.sandbox()
        result.machine = machine_info(redis.url, mode)
        if "http" in phases:
            _phase("HTTP throughput at saturation, service vs bare Flask", started)
            result.pairs = measure_http(
                stack,
                redis,
                sandbox.url,
                seconds=plan.seconds,
                conns=plan.conns,
                rounds=plan.rounds,
            )
            result.figures += fig.http_figures(result.pairs)
        if "slow" in phases:
            _phase("slow clients: GET beside 200 slow-header connections", started)
            slow = measure_slow_clients(
                stack, redis, sandbox.url, seconds=plan.seconds, conns=plan.conns, rounds=plan.rounds
            )
            result.figures += fig.slow_client_figures(slow)
        if "streams" in phases:
            _phase(f"live streams: {plan.streams:,} open, event latency, GET beside them", started)
            streams = measure_streams(
                stack,
                redis,
                sandbox,
                streams=plan.streams,
                samples=plan.stream_samples,
                seconds=plan.seconds,
                conns=plan.conns,
                rounds=plan.rounds,
            )
            print(
                f"  worker commit to client: p50 {fig.percentile(streams.worker_ms, 50):.1f} ms, "
                f"p99 {fig.percentile(streams.worker_ms, 99):.1f} ms ({len(streams.worker_ms)} events)"
            )
            result.figures += fig.stream_figures(streams)
        if "dispatch" in phases:
            _phase("dispatch latency, idle", started)
            d = measure_dispatch(stack, redis, sandbox, samples=plan.dispatch_samples)
            result.dispatch["as-is"] = d
            print(f"  p50 {fig.percentile(d.service_ms, 50):.1f} ms")
            result.figures += fig.dispatch_figures(result.dispatch)
        if "throughput" in phases:
            _phase("resume throughput and worker memory, sandbox at 2 s", started)
            web = stack.gunicorn("app:create_app()", service_env(redis.url, sandbox.url), "web-throughput")
            setups = [(1, c) for c in plan.concurrency] + [(n, 1) for n in plan.processes]
            for processes, concurrency in setups:
                profiled = processes == 1 and concurrency == PROFILED_CONCURRENCY
                spy = scratch / "profiles" / "worker" if profiled else None
                t = measure_throughput(
                    stack,
                    redis,
                    sandbox,
                    web,
                    processes=processes,
                    concurrency=concurrency,
                    sessions=plan.sessions,
                    profile_to=spy,
                )
                result.throughput.append(t)
                result.worker_profile = t.profile or result.worker_profile
                print(
                    f"  {t.label}: {t.sessions} sessions, {t.per_second:.1f}/s of ideal {t.ideal:.1f}/s, "
                    f"{t.worker_cpu_ms_per_job:.1f} ms CPU per job, peak PSS {t.pss_peak_kib / 1024:.0f} MiB"
                )
            stack.stop(web)
            result.figures += fig.throughput_figures(result.throughput)
            result.figures += fig.worker_memory_figures(result.throughput)
        if "telemetry" in phases:
            _phase("metrics and JSON logs: on against off", started)
            t = measure_telemetry(
                stack,
                redis,
                sandbox,
                seconds=plan.seconds,
                conns=plan.conns,
                rounds=plan.rounds,
                samples=plan.dispatch_samples,
            )
            result.figures += fig.telemetry_figures(t)
        if "memory" in phases:
            _phase("Redis memory per waiting session", started)
            result.memory = [measure_memory(stack, plan.memory_counts, packed=p) for p in (False, True)]
            result.figures += fig.memory_figures(result.memory)
        if "webhooks" in phases:
            _phase("webhooks on vs off: dispatch latency, create throughput, memory", started)
            w = measure_webhooks(
                stack,
                redis,
                sandbox,
                samples=plan.dispatch_samples,
                seconds=plan.seconds,
                conns=plan.conns,
                rounds=plan.rounds,
            )
            print(f"  {w.delivered} webhooks delivered during the dispatch samples")
            result.figures += fig.webhook_figures(w)
        if "ack" in phases:
            _phase("token POST with REDIS_WAIT_REPLICAS=1 vs off, one replica", started)
            ack = measure_ack(stack, redis, sandbox, samples=plan.ack_samples)
            figures = ack_figures(ack)
            print(f"  p50 {figures[0].value} ms with the acknowledgement, {figures[0].baseline} ms without")
            result.figures += figures
    result.params = {
        "web": f"{WEB_WORKERS} gevent workers x {WEB_CONNECTIONS} connections",
        "conns": plan.conns,
        "seconds": plan.seconds,
        "rounds": plan.rounds,
        "dispatch_samples": plan.dispatch_samples,
        "paired_rounds": max(PAIRED_MIN_ROUNDS, plan.rounds),  # the telemetry and webhooks phases
    }
    _phase(f"report ({scratch} holds logs, wrk output and profiles)", started)
    write_all(result, out_dir)
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, check wrk, run, report."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs for development (about 4 minutes)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(PHASES)}")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it happens, even through a pipe
    phases = tuple(args.only.split(",")) if args.only else PHASES
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    try:
        ensure_wrk()
        if not PY_SPY.exists() or importlib.util.find_spec("matplotlib") is None:
            raise BenchSetupError("py-spy or matplotlib is missing: pip install -r requirements-bench.txt")
    except BenchSetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop every process we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    raise_open_files_limit()  # 1,000 streams and 200 slow clients, here and in the gunicorn we start
    out_dir = HERE / "out" / "partial" if args.only else HERE
    run(QUICK if args.quick else Plan(), phases, out_dir, "quick" if args.quick else "full")
    return 0


if __name__ == "__main__":
    sys.exit(main())
