"""What the numbers were measured on: hardware, software versions, settings and background load."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from redis import Redis

from bench.load import ensure_wrk
from bench.stack import WEB_CONNECTIONS, WEB_WORKERS


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def busy_share(seconds: float = 2.0) -> float:
    """Share of all cores busy over `seconds`: load from other processes, when we are idle."""

    def ticks() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(values), values[3] + values[4]

    total0, idle0 = ticks()
    time.sleep(seconds)
    total1, idle1 = ticks()
    return round(1 - (idle1 - idle0) / max(1, total1 - total0), 2)


def code_version() -> str:
    """The commit measured, and whether app/ or worker/ differed from it (others edit them meanwhile)."""
    root = Path(__file__).resolve().parent.parent
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "app", "worker"], capture_output=True, text=True, check=False
    )
    changed = len(dirty.stdout.splitlines())
    return f"{head.stdout.strip() or 'unknown'}" + (
        f" + {changed} uncommitted file(s) in app/, worker/" if changed else ""
    )


def machine_info(redis_url: str, mode: str) -> dict[str, Any]:
    """The `machine` object of results.json."""
    with Redis.from_url(redis_url) as redis:
        redis_version = redis.info("server")["redis_version"]
    wrk = subprocess.run([ensure_wrk(), "--version"], capture_output=True, text=True, check=False)
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis_server": redis_version,
        "packages": {name: version(name) for name in ("flask", "gunicorn", "redis", "rq", "requests")},
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else "wrk",
        "gunicorn": f"{WEB_WORKERS} gevent workers x {WEB_CONNECTIONS} connections (gunicorn.conf.py)",
        "mode": mode,
        "code": code_version(),
        "background_busy_at_start": busy_share(),
        "loadavg_at_start": os.getloadavg()[0],
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
