"""Paired rounds: several servers loaded at the same time, so that whatever else this shared machine does
in a round slows them all alike, and a comparison made of the medians of each round's ratios.

Run one after another, the same server's CPU per request moved by 10-30% between 10 s rounds here, more
than the 5-15% differences some figures judge. Loaded together, each side gets its own wrk with part of
the connections. Fair only between servers of one serving model: the kernel shares CPU per thread, so a
server with more threads would claim more of it (bench/versus.py alternates instead, for that reason).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from bench.load import LoadResult

Round = dict[str, LoadResult]
MIN_ROUNDS = 7


def run_together(starts: Mapping[str, Callable[[], LoadResult]]) -> Round:
    """Start every side's prepared wrk run at once; each side's result."""
    with ThreadPoolExecutor(len(starts)) as pool:
        jobs = {side: pool.submit(start) for side, start in starts.items()}
        return {side: job.result() for side, job in jobs.items()}


def median(rounds: list[Round], side: str, key: Callable[[LoadResult], float]) -> float:
    """One side's own median over the rounds."""
    return statistics.median(key(r[side]) for r in rounds)


def median_ratio(rounds: list[Round], side: str, against: str, key: Callable[[LoadResult], float]) -> float:
    """The median over the rounds of `side`'s value over `against`'s in the same round."""
    return statistics.median(key(r[side]) / key(r[against]) for r in rounds)


def rps(result: LoadResult) -> float:
    return result.rps


def cpu_ms(result: LoadResult) -> float:
    return result.cpu_ms_per_request


def describe(r: Round) -> str:
    """One round, a line: each side's req/s and server CPU per request."""
    return ", ".join(
        f"{side} {x.rps:,.0f} req/s {x.cpu_ms_per_request:.3f} ms CPU/req" for side, x in r.items()
    )
