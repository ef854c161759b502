"""The processes a benchmark runs against, started through devstack and always stopped again."""

from __future__ import annotations

import functools
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests
from redis import Redis

from devstack.processes import PYTHON, ROOT, Proc, free_port, spawn, start_redis, start_sandbox, wait_for
from mfa.sealing import new_key_pair
from mfa.settings import WEB_WITHHELD, WORKER_WITHHELD

API_KEY = "bench-api-key-0123456789abcdef-0123"  # API keys are at least 32 characters
BELVO_SECRET_ID = "sandbox-secret-id"
BELVO_SECRET_PASSWORD = "sandbox-secret-password-for-bench"
# gunicorn.conf.py's defaults: two gevent worker processes, one per core, each holding up to
# WEB_CONNECTIONS connections.
WEB_WORKERS, WEB_CONNECTIONS = 2, 2000
GRACE_SECONDS = 15.0  # devstack's own stop timeout: RQ's warm shutdown lets the job in hand finish


class Stack:
    """Every process started for a run; `stop()` ends them all, newest first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.procs: list[Proc] = []

    def track(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def stop(self, *procs: Proc) -> None:
        """Stop the given processes (all when none is given): clients first, then Redis and the sandbox."""
        chosen = list(procs) or list(self.procs)
        servers = [p for p in chosen if p.name.startswith(("redis", "sandbox"))]
        for group in ([p for p in chosen if p not in servers], servers):
            _stop_together(group)
        for proc in chosen:
            if proc in self.procs:
                self.procs.remove(proc)

    def redis(self, name: str = "redis", aof: bool = False) -> Proc:
        """A redis-server of its own; with `aof`, AOF fsync'd every second, as the README's deploy runs it."""
        proc = self.track(start_redis(self.root / name, self.logs, name=name))
        if aof:
            with Redis.from_url(proc.url) as client:
                client.config_set("appendfsync", "everysec")
                client.config_set("appendonly", "yes")
        return proc

    def sandbox(self) -> Proc:
        return self.track(start_sandbox(self.logs, BELVO_SECRET_ID, BELVO_SECRET_PASSWORD))

    def gunicorn(self, app_spec: str, env: Mapping[str, str], name: str) -> Proc:
        """gunicorn with the repository's gunicorn.conf.py serving `app_spec`, as the Procfile runs it."""
        port = free_port()
        env = {
            "WEB_CONCURRENCY": str(WEB_WORKERS),
            "WEB_CONNECTIONS": str(WEB_CONNECTIONS),
            **env,
            "PORT": str(port),
            "WEB_BIND_HOST": "127.0.0.1",
        }
        argv = [PYTHON, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"), app_spec]
        proc = self.track(spawn(name, argv, self.logs, env, withheld=WEB_WITHHELD))
        proc.port, proc.url = port, f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if not proc.alive:
                raise RuntimeError(f"{name} exited:\n{proc.log_text()[-3000:]}")
            return requests.get(proc.url + "/healthz", timeout=1).ok

        wait_for(healthy, 60, f"{name} /healthz")
        return proc

    def workers(self, count: int, env: Mapping[str, str]) -> list[Proc]:
        """`count` `python -m worker` processes (as the Procfile runs it), started together, awaited idle."""
        procs = []
        for i in range(count):
            name = f"worker-{i}-{time.monotonic_ns()}"
            own = {**env, "WORKER_HEARTBEAT_FILE": str(self.logs / f"{name}.heartbeat")}
            argv = [PYTHON, "-m", "worker", "--name", name]
            proc = self.track(spawn(name, argv, self.logs, own, withheld=WORKER_WITHHELD))
            proc.extra["worker_name"] = name
            procs.append(proc)
        client = Redis.from_url(env["REDIS_URL"])
        try:
            for proc in procs:
                key = f"rq:worker:{proc.extra['worker_name']}"

                def idle(proc: Proc = proc, key: str = key) -> bool:
                    if not proc.alive:
                        raise RuntimeError(f"{proc.name} exited:\n{proc.log_text()[-3000:]}")
                    return b"idle" in (client.hget(key, "state") or b"")

                wait_for(idle, 60 + 5 * count, f"RQ worker {proc.name} to be idle")
        finally:
            client.close()
        return procs


def _stop_together(procs: list[Proc]) -> None:
    """SIGTERM to all at once, one shared grace period, then SIGKILL: 16 workers stop in 15 s, not 4 min."""
    for proc in procs:
        proc.signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for proc in procs:
        try:
            proc.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(
                f"bench: {proc.name} ignored SIGTERM for {GRACE_SECONDS:.0f}s; killed (see {proc.log_path})"
            )
            proc.signal(signal.SIGKILL)
            proc.popen.wait(5)


@functools.cache
def _sealing_keys() -> dict[str, str]:
    """One pair each way per benchmark run (every stack's web and workers must share them)."""
    sealing_private, sealing_public = new_key_pair()
    result_private, result_public = new_key_pair()
    return {
        "SEALING_PUBLIC_KEY": sealing_public,
        "SEALING_PRIVATE_KEYS": sealing_private,
        "RESULT_PUBLIC_KEY": result_public,
        "RESULT_PRIVATE_KEYS": result_private,
    }


def service_env(redis_url: str, sandbox_url: str) -> dict[str, str]:
    """The service's environment: production defaults, minus what would throttle or flood a benchmark."""
    return {
        "REDIS_URL": redis_url,
        "API_KEYS": API_KEY,
        **_sealing_keys(),  # sealed as in production; each process gets its own half (spawn's withheld)
        "BELVO_BASE_URL": sandbox_url,
        "BELVO_SECRET_ID": BELVO_SECRET_ID,
        "BELVO_SECRET_PASSWORD": BELVO_SECRET_PASSWORD,
        "RATE_LIMIT_PER_MINUTE": "0",
        "SESSION_RATE_LIMIT_PER_MINUTE": "0",
        # The 401 throttle too: each budget that is on costs every /v1 request one script round trip
        # (about 0.15 ms, RESULTS.md), and the figures compare the routes' own work with the baseline's.
        "AUTH_FAILURE_LIMIT_PER_MINUTE": "0",
        "WEB_ACCESS_LOG": "0",
        "LOG_LEVEL": "INFO",  # the production default: the worker logs every job
    }


@contextmanager
def running(root: Path) -> Iterator[Stack]:
    """A Stack whose processes are stopped however the block ends."""
    stack = Stack(root)
    try:
        yield stack
    finally:
        stack.stop()


def paused_session(http: requests.Session, web: str, sandbox: str) -> tuple[list[dict], dict]:
    """A numeric-token 428 from the sandbox, stored through POST /v1/sessions: (the 428 body, our session)."""
    pause = http.post(f"{sandbox}/_sandbox/sessions", json={"token_type": "numeric"}, timeout=10).json()
    created = http.post(
        f"{web}/v1/sessions",
        json={"token_required": pause},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    created.raise_for_status()
    return pause, created.json()
