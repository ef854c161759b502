"""The wrk driver: one bounded run against a loopback URL, summarised from the JSON bench/wrk.lua writes."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import cpu_seconds

SCRIPT = Path(__file__).with_name("wrk.lua")
WRK_THREADS = 2


class BenchSetupError(RuntimeError):
    """Something the benchmark needs is missing; the message says how to get it."""


def ensure_wrk() -> str:
    """The wrk executable; installed from Debian's packages when missing and we are root on Debian."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and Path("/etc/debian_version").exists():
        print("bench: wrk not found; installing it with apt-get (Debian package `wrk`)", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            check=True,
            timeout=600,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which("wrk")
    if not found:
        raise BenchSetupError(
            "wrk, the HTTP load generator, is not installed: `sudo apt-get install wrk` "
            "(Debian/Ubuntu) or `brew install wrk` (macOS), then run `make bench` again"
        )
    return found


@dataclass
class LoadResult:
    """One wrk run: throughput, latency percentiles (ms) and every kind of error wrk counted."""

    name: str
    requests: int
    seconds: float
    errors: dict[str, int]
    percentiles_ms: list[tuple[float, float]] = field(repr=False)
    server_cpu_seconds: float = 0.0  # CPU the server's process tree used during the run

    @property
    def cpu_ms_per_request(self) -> float:
        """Server CPU per answered request: steadier than req/s on a machine shared with other load."""
        return 1000 * self.server_cpu_seconds / self.requests if self.requests else 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        """Non-2xx answers, timeouts and socket errors: a valid run has none."""
        return sum(self.errors.values())

    def percentile(self, p: float) -> float:
        """Latency in ms at percentile `p` (one of those wrk.lua reports)."""
        return next(ms for q, ms in self.percentiles_ms if q >= p)


def run_wrk(
    url: str,
    *,
    name: str,
    out_dir: Path,
    seconds: float,
    conns: int,
    method: str = "GET",
    path: str = "/",
    ids_file: Path | None = None,
    once: bool = False,
    body: str = "",
    auth: str = "",
    server_pid: int | None = None,
) -> LoadResult:
    """`wrk -t2 -c<conns> -d<seconds> --latency -s bench/wrk.lua`, bounded by a hard timeout."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = out_dir / f"{name}.json"
    env = {
        **os.environ,
        "BENCH_METHOD": method,
        "BENCH_PATH": path,
        "BENCH_IDS": str(ids_file or ""),
        "BENCH_ONCE": "1" if once else "0",
        "BENCH_BODY": body,
        "BENCH_AUTH": auth,
        "BENCH_THREADS": str(WRK_THREADS),
        "BENCH_NONCE": secrets.token_hex(8),
        "BENCH_OUT": str(summary),
    }
    argv = [
        ensure_wrk(),
        f"-t{WRK_THREADS}",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(SCRIPT),
        url,
    ]
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    (out_dir / f"{name}.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0 or not summary.exists():
        raise RuntimeError(f"wrk failed ({done.returncode}) for {name}:\n{done.stdout}{done.stderr}")
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    raw = json.loads(summary.read_text())
    return LoadResult(
        name=name,
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        errors=raw["errors"],
        percentiles_ms=[(float(p), us / 1000) for p, us in raw["percentiles_us"]],
        server_cpu_seconds=cpu,
    )
