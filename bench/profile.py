"""py-spy around a load run: collapsed stacks to look at and a short table of where the time went."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
PY_SPY = Path(sys.executable).with_name("py-spy")
RATE = 250


@dataclass
class Profile:
    """Shares of on-CPU samples: by function (inclusive) and by the package the sample's leaf is in."""

    samples: int
    functions: list[tuple[str, float]]
    leaf_packages: list[tuple[str, float]]
    raw: Path  # collapsed stacks: open in speedscope.app or feed to flamegraph.pl


def _frame_name(frame: str) -> str:
    # py-spy raw frames read "func (path/to/module.py:123)"; drop the line number.
    return frame.rsplit(":", 1)[0] + ")" if frame.endswith(")") else frame


def _package(frame: str) -> str:
    inside = frame[frame.find("(") + 1 :]
    for marker in ("site-packages/", "lib/python3."):
        if marker in inside:
            inside = inside.split(marker, 1)[1]
            if marker == "lib/python3.":
                inside = "stdlib:" + inside.split("/", 1)[-1]
            break
    return inside.split("/", 1)[0].split(".py", 1)[0]


def _load(raw: Path) -> tuple[int, Counter[str], Counter[str]]:
    """Samples in all, per function (inclusive: once per stack it appears in), per leaf package."""
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [f for f in stack.split(";") if f.endswith(")")]
        if not frames:
            continue
        count = int(count_text)
        total += count
        for name in {_frame_name(f) for f in frames}:
            inclusive[name] += count
        leaves[_package(frames[-1])] += count
    return total, inclusive, leaves


def _telling(counts: Counter[str], total: int, top: int) -> list[tuple[str, int]]:
    # Skip the frames under which nearly everything runs (entry points, thread bootstrap) and keep one
    # frame per chain of callers that all hold the same samples.
    kept: list[tuple[str, int]] = []
    for name, n in counts.most_common():
        if n >= 0.97 * total or (kept and kept[-1][1] == n):
            continue
        kept.append((name, n))
        if len(kept) == top:
            break
    return kept


def summarize(raw: Path, top: int = 10) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """Parse py-spy's collapsed stacks: inclusive share per function, leaf share per package."""
    total, inclusive, leaves = _load(raw)
    if not total:
        return 0, [], []
    functions = [(name, n / total) for name, n in _telling(inclusive, total, top)]
    return total, functions, [(name, n / total) for name, n in leaves.most_common(top)]


def _own_share(raw: Path) -> dict[str, float]:
    """Share of all samples spent in each function itself (the leaf of a sample), imports left out."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f.endswith(")")]
        if not frames or not count_text.isdigit():
            continue
        total += int(count_text)
        # Imports (a recycled gunicorn worker loading the app again) are reported apart, by share_with.
        if "_find_and_load" not in stack:
            counts[_frame_name(frames[-1])] += int(count_text)
    total = total or 1
    return {name: n / total for name, n in counts.items()}


def compare(
    service: Path, service_ms: float, baseline: Path, baseline_ms: float, top: int = 10
) -> list[tuple[str, float, float]]:
    """Functions by extra own time per request over the baseline: (name, service ms, baseline ms).

    Samples give each function's share; `*_ms` (measured CPU per request) turns shares into ms.
    """
    svc, base = _own_share(service), _own_share(baseline)
    rows = [(n, svc.get(n, 0.0) * service_ms, base.get(n, 0.0) * baseline_ms) for n in set(svc) | set(base)]
    rows.sort(key=lambda row: row[2] - row[1])
    return rows[:top]


def own_code_ms(raw: Path, cpu_ms: float, marker: str = "(app/", top: int = 8) -> list[tuple[str, float]]:
    """The service's own functions (frames under app/): inclusive share times CPU ms per request."""
    total, inclusive, _ = _load(raw)
    # Module bodies run only when a recycled gunicorn worker imports the app again: reported apart.
    found = [(name, n) for name, n in inclusive.most_common() if marker in name and "<module>" not in name]
    return [(name, n / max(1, total) * cpu_ms) for name, n in found[:top]]


def share_with(raw: Path, frame: str) -> float:
    """Share of samples whose stack holds a frame containing `frame`."""
    hit = total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            total += int(count_text)
            hit += int(count_text) if frame in stack else 0
    return hit / total if total else 0.0


class Spy:
    """py-spy record on `pid` and its children from start() until stop()."""

    def __init__(self, pid: int, out: Path) -> None:
        self.raw = out.with_suffix(".txt")
        out.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(PY_SPY), "record", "--pid", str(pid), "--subprocesses", "--gil", "--rate", str(RATE)]
        self._argv = [*argv, "--format", "raw", "--output", str(self.raw)]
        self._popen: subprocess.Popen | None = None

    def start(self) -> Spy:
        self._popen = subprocess.Popen(self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def stop(self) -> Profile:
        """SIGINT makes py-spy write what it has; a profile of nothing is an error."""
        assert self._popen is not None
        self._popen.send_signal(signal.SIGINT)
        try:
            self._popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()
        if not self.raw.exists():
            raise RuntimeError(f"py-spy wrote no profile to {self.raw} (is ptrace allowed here?)")
        samples, functions, leaves = summarize(self.raw)
        return Profile(samples, functions, leaves, self.raw)


def profiled(pid: int, out: Path, action: Callable[[], T]) -> tuple[T, Profile]:
    """Sample `pid` and its children with py-spy while `action` runs."""
    spy = Spy(pid, out).start()
    try:
        result = action()
    finally:
        profile = spy.stop()
    return result, profile
