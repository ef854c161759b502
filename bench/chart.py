"""bench/latency.png: latency distributions (CDFs) of each measured side beside its baseline."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.dispatch import DispatchResult
from bench.figures import ROUTES
from bench.http import Pair

SERVICE, BASELINE = "tab:blue", "tab:gray"


def _cdf(values: list[float]) -> tuple[list[float], list[float]]:
    ordered = sorted(values)
    return ordered, [100 * (i + 1) / len(ordered) for i in range(len(ordered))]


def write_chart(pairs: list[Pair], dispatch: dict[str, DispatchResult], path: Path) -> Path:
    """One panel per HTTP route (wrk's percentiles at saturation) and one for dispatch latency."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for ax, pair in zip(axes.flat, pairs, strict=False):
        for side, color, label in (
            ("service", SERVICE, "service"),
            ("baseline", BASELINE, "bare Flask baseline"),
        ):
            result = pair.steadiest(side)
            ps = [(p, ms) for p, ms in result.percentiles_ms if p <= 99.9]
            label = f"{label} ({result.rps:,.0f} req/s)"
            ax.plot([ms for _, ms in ps], [p for p, _ in ps], color=color, label=label)
        ax.set_title(f"{ROUTES[pair.figure]} at saturation (wrk, steadiest round)")
    ax = axes.flat[3]
    for d in dispatch.values():
        xs, ys = _cdf(d.service_ms)
        ax.plot(xs, ys, color=SERVICE, label="service")
    if "as-is" in dispatch:
        xs, ys = _cdf(dispatch["as-is"].baseline_ms)
        ax.plot(xs, ys, color=BASELINE, label="RQ no-op job, enqueue to start")
    ax.set_title("dispatch: token accepted to PATCH received (idle)")
    for ax in axes.flat:
        if not ax.lines:  # a phase left out with --only
            ax.set_visible(False)
            continue
        ax.set_xscale("log")
        # Plain millisecond numbers; the log scale's default 10^x minor labels collide.
        # Ticks at 1, 2 and 5 of each decade, so a panel inside one decade still has labels.
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("percentile")
        ax.set_ylim(0, 100)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle("Latency distributions, each beside its baseline in the same run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
