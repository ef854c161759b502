"""bench/results.json, bench/RESULTS.md and bench/latency.png from one run's measurements."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.dispatch import DispatchResult
from bench.figures import ROUTES, Figure, percentile
from bench.http import Pair
from bench.memory import MemoryResult
from bench.notes import BEFORE_AFTER, HOW, RECOMMEND, SCALING
from bench.profile import Profile
from bench.throughput import ThroughputResult

ROOT = Path(__file__).resolve().parent.parent
BEFORE = ROOT / "bench" / "before" / "results.json"


def shown(path: Path) -> str:
    """A path as the report names it: from the repository's root, never the machine's."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return Path(path).name


@dataclass
class Run:
    """Everything one `python -m bench` measured."""

    machine: dict[str, Any]
    params: dict[str, Any]
    figures: list[Figure]
    pairs: list[Pair] = field(default_factory=list)
    dispatch: dict[str, DispatchResult] = field(default_factory=dict)
    throughput: list[ThroughputResult] = field(default_factory=list)
    memory: list[MemoryResult] = field(default_factory=list)
    worker_profile: Profile | None = None


def _value(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}".rstrip("0").rstrip(".")
    return f"{text} {unit}".strip()


def figures_table(figures: list[Figure]) -> str:
    """The Markdown table of every figure."""
    rows = [
        "| figure | value | baseline | ratio | target | met |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for f in figures:
        met = "-" if f.met is None else ("yes" if f.met else "**no**")
        ratio = "-" if f.ratio is None else f"{f.ratio:.2f}x"
        value, baseline = _value(f.value, f.unit), _value(f.baseline, f.unit)
        rows.append(f"| {f.name} | {value} | {baseline} | {ratio} | {f.target} | {met} |")
    return "\n".join(rows)


def _http_evidence(pair: Pair) -> list[str]:
    route = ROUTES[pair.figure]
    svc, base = pair.best("service"), pair.best("baseline")
    lines = [
        f"### {route}: {pair.ratio():.2f}x the baseline's requests/s",
        "",
        f"- Server CPU per request (gunicorn tree, /proc; best rounds): service "
        f"{svc.cpu_ms_per_request:.2f} ms, baseline {base.cpu_ms_per_request:.2f} ms. "
        f"If the server alone were the bottleneck, req/s would follow CPU per request: "
        f"{pair.cpu_ms('baseline') / pair.cpu_ms('service'):.2f}x the baseline (least CPU per request of the "
        "rounds). wrk, Redis and other engineers' processes share the same 2 cores, so measured req/s "
        "ratios move further from run to run than this one.",
    ]
    prof = pair.profile
    if prof is not None:
        lines += [
            f"- py-spy over one more run of each side ({prof.samples[0]:,} and {prof.samples[1]:,} GIL-held "
            f"samples; raw stacks `{shown(prof.raw[0])}`): each function's share of the samples times that "
            f"run's server CPU per request ({prof.service_ms:.2f} ms and {prof.baseline_ms:.2f} ms) "
            "estimates its ms per request (system-call time is spread pro rata).",
            f"- Imports: {prof.imports[0]:.0%} of the service's samples and {prof.imports[1]:.0%} of the "
            "baseline's, left out of the tables below.",
            "",
            "| service function (app/), inclusive | ms/request |",
            "| --- | ---: |",
            *[f"| `{name}` | {ms:.3f} |" for name, ms in prof.own_code],
            "",
            "| function, own time | service ms/req | baseline ms/req |",
            "| --- | ---: | ---: |",
            *[f"| `{name}` | {s:.3f} | {b:.3f} |" for name, s, b in prof.extra],
        ]
    lines += ["", RECOMMEND[pair.figure], ""]
    return lines


def before_after(figures: list[Figure], before_path: Path) -> list[str]:
    """Each figure beside the same figure in the run before the fixes (bench/before/results.json)."""
    if not before_path.exists():
        return []
    before = {f["name"]: f for f in json.loads(before_path.read_text())["figures"]}
    rows = [
        "| figure | before | ratio before | after | ratio after | target | met after |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for f in figures:
        old = before.get(f.name)
        if old is None:
            continue
        met = "-" if f.met is None else ("yes" if f.met else "**no**")
        old_ratio = "-" if old["ratio"] is None else f"{old['ratio']:.2f}x"
        new_ratio = "-" if f.ratio is None else f"{f.ratio:.2f}x"
        rows.append(
            f"| {f.name} | {_value(old['value'], old['unit'])} | {old_ratio} | {_value(f.value, f.unit)} "
            f"| {new_ratio} | {f.target} | {met} |"
        )
    return rows


def _worker_evidence(run: Run) -> list[str]:
    lines = ["### Dispatch latency, resume throughput and worker memory", ""]
    lines.append(
        "| setup | calls in flight | sessions | sessions/s | ideal | ratio | worker CPU per job "
        "| peak PSS | machine busy |"
    )
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for t in run.throughput:
        lines.append(
            f"| {t.label} | {t.in_flight} | {t.sessions} | {t.per_second:.1f} | {t.ideal:.1f} "
            f"| {t.per_second / t.ideal:.2f} | {t.worker_cpu_ms_per_job:.1f} ms "
            f"| {t.pss_peak_kib / 1024:.0f} MiB | {t.machine_busy:.0%} |"
        )
    lines.append("")
    for d in run.dispatch.values():
        lines.append(
            f"- dispatch: p50 {percentile(d.service_ms, 50):.1f} ms, "
            f"p99 {percentile(d.service_ms, 99):.1f} ms "
            f"(RQ no-op baseline p50 {percentile(d.baseline_ms, 50):.1f} ms; RQ's own Job.started_at - "
            f"enqueued_at p50 {percentile(d.baseline_fields_ms, 50):.1f} ms; {len(d.service_ms)} samples)"
        )
    prof = run.worker_profile
    if prof is not None:
        lines += [
            "",
            f"py-spy of one `python -m worker` at concurrency 8 ({prof.samples} "
            f"GIL-held samples; raw stacks `{shown(prof.raw)}`):",
            "",
            "| function, inclusive | share of worker CPU |",
            "| --- | ---: |",
            *[f"| `{name}` | {share:.0%} |" for name, share in prof.functions],
        ]
    lines += ["", RECOMMEND["worker"], ""]
    return lines


def _memory_evidence(run: Run) -> list[str]:
    lines = ["### Redis memory per waiting session", ""]
    for m in run.memory:
        per = ", ".join(f"{n:,}: {b:,.0f} B" for n, b in m.per_session_bytes.items())
        lines.append(f"- {m.variant}: hash encoding `{m.encoding}`; {per}")
    return [*lines, "", RECOMMEND["memory"], ""]


def _scaling_values(run: Run) -> dict[str, str]:
    """The measured numbers the Scaling section quotes ("-" where a phase was left out)."""
    values = dict.fromkeys(
        (
            "get_cpu",
            "job_cpu",
            "session_bytes",
            "per_million",
            "packed_bytes",
            "worker_pss",
            "top_concurrency",
            "top_pss",
        ),
        "-",
    )
    gets = [p for p in run.pairs if p.figure == "get"]
    if gets:
        values["get_cpu"] = f"{gets[0].best('service').cpu_ms_per_request:.2f}"
    single = {t.concurrency: t for t in run.throughput if t.processes == 1}
    if single:
        busiest = single[max(single)]
        values["job_cpu"] = f"{busiest.worker_cpu_ms_per_job:.0f}"
        values["worker_pss"] = f"{single[min(single)].pss_peak_kib / 1024:.0f}"
        values["top_concurrency"] = str(busiest.concurrency)
        values["top_pss"] = f"{busiest.pss_peak_kib / 1024:.0f}"
    for m in run.memory:
        largest = m.per_session_bytes[max(m.per_session_bytes)]
        if m.variant == "redis-memory":
            values["session_bytes"] = f"{largest:,.0f}"
            values["per_million"] = f"{largest / 1000:.1f}"
        else:
            values["packed_bytes"] = f"{largest:,.0f}"
    return values


def write_markdown(run: Run, path: Path) -> str:
    """RESULTS.md: the table, how it was measured, the misses with their evidence, and scaling."""
    m = run.machine
    text = [
        "# Benchmark results",
        "",
        f"> Produced by `make bench` ({m['mode']} run, {m['started_at']}). Background load when it started: "
        f"{m['background_busy_at_start']:.0%} of both cores busy, load average {m['loadavg_at_start']:.1f}. "
        "This machine was shared with other engineers' test suites while the suite was written: **take "
        "final numbers from a run on a quiet machine.** On a shared machine, req/s of the same side can "
        "differ by 20% between rounds; server CPU per request (in the table and under each miss) is the "
        "steadier comparison.",
        "",
        "Run it: `make bench` (full, about 20 min), `make bench BENCH_ARGS=--quick` (about 4 min), or",
        "`python -m bench --only http,dispatch,throughput,memory` (a subset, written to bench/out/partial/).",
        "Logs, wrk summaries and py-spy stacks of each run stay in bench/out/run-*/.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {json.dumps(v) if isinstance(v, dict) else v}" for k, v in m.items()],
        "",
        "## Figures",
        "",
        figures_table(run.figures),
        "",
        "## How each figure was measured",
        "",
        HOW.format(**run.params),
        "",
    ]
    compared = before_after(run.figures, BEFORE)
    if compared:
        text += [
            "## Before and after the fixes",
            "",
            BEFORE_AFTER,
            "",
            *compared,
            "",
        ]
    text += ["## Profile evidence, and what was changed or is left", ""]
    for pair in run.pairs:
        if not pair.met:
            text += _http_evidence(pair)
    if run.throughput or run.dispatch:
        text += _worker_evidence(run)
    if run.memory:
        text += _memory_evidence(run)
    text += ["## Scaling", "", SCALING.format(**_scaling_values(run)), ""]
    body = "\n".join(text)
    path.write_text(body)
    return body


def write_all(run: Run, out_dir: Path) -> None:
    """results.json, RESULTS.md and latency.png in `out_dir`; prints the table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"machine": run.machine, "figures": [f.as_json() for f in run.figures]}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(run, out_dir / "RESULTS.md")
    if run.pairs or run.dispatch:
        from bench.chart import write_chart  # matplotlib loads only when there is something to draw

        write_chart(run.pairs, run.dispatch, out_dir / "latency.png")
    print(figures_table(run.figures))
    print(f"\nwritten: {out_dir / 'results.json'}, {out_dir / 'RESULTS.md'}, {out_dir / 'latency.png'}")
