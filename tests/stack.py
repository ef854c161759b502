"""The one builder of real-process stacks: a redis-server, the sandbox, gunicorn and `python -m worker`.

The system tier (tests/system/) runs on these; every stack starts from tests.support.SERVICE_ENV, and
a test overrides only what it is about. `build_stack` starts everything and stops whatever is still
running when the block ends, failed starts included.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from devstack.processes import Proc, children, start_redis, start_sandbox, start_web, start_worker, wait_for
from mfa.keys import session_key
from tests.sentinels import SentinelGroup
from tests.support import (
    BELVO_SECRET_ID,
    BELVO_SECRET_PASSWORD,
    REDIS_ADMIN_PASSWORD,
    REDIS_PASSWORDS,
    SERVICE_ENV,
    Api,
    Sandbox,
    acl_denials,
    first,
)


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children first found through /proc, then theirs)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        below = children(todo.pop())
        found += below
        todo += below
    return found


def process_gone(pid: int) -> bool:
    """True once `pid` no longer runs (exited, or a zombie nobody has reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


class Stack:
    """The processes of one stack and clients for each; built by `build_stack`."""

    def __init__(
        self, root: Path, env: Mapping[str, str], exits: contextlib.ExitStack, sentinel: bool = False
    ) -> None:
        self.root, self.logs, self._exits = root, root / "logs", exits
        self._procs: list[Proc] = []
        self.group: SentinelGroup | None = None
        if sentinel:
            self.group = SentinelGroup(root, self.logs, self._owned)
            exits.callback(self.group.close)
            self._stores = self.group.procs
            self.role_env = {role: self.group.env(role) for role in ("web", "worker")}
            self.redis = self.group.admin
        else:
            self.redis_proc = self._owned(self._start_redis())
            self._stores = lambda: [self.redis_proc]
            self.role_env = {
                role: {"REDIS_URL": self.redis_proc.extra["urls"][role]} for role in ("web", "worker")
            }
            self.redis = Redis.from_url(self.redis_proc.url, socket_connect_timeout=1, socket_timeout=5)
            exits.callback(self.redis.close)
        self.sandbox_proc = self._owned(start_sandbox(self.logs, BELVO_SECRET_ID, BELVO_SECRET_PASSWORD))
        self._test_env = dict(env)
        # The web's settings; a worker's are the same with its own credentials (worker_env).
        self.env = {**SERVICE_ENV, **self.role_env["web"], "BELVO_BASE_URL": self.sandbox_proc.url, **env}
        self.sandbox = Sandbox(self.sandbox_proc.url)
        self.workers: list[Proc] = []
        self.web: Proc | None = None
        self.api: Api | None = None

    def _start_redis(self, port: int = 0) -> Proc:
        """Redis with the service's ACL users (AOF on): proc.url is the tests' administrator login."""
        return start_redis(
            self.root / "redis",
            self.logs,
            port=port,
            appendonly=True,
            passwords=REDIS_PASSWORDS,
            admin_password=REDIS_ADMIN_PASSWORD,
        )

    @property
    def worker_env(self) -> dict[str, str]:
        """A worker's settings: the web's, logged in as the worker's ACL user (a test's own env wins)."""
        return {**self.env, **self.role_env["worker"], **self._test_env}

    def _owned(self, proc: Proc) -> Proc:
        self._exits.callback(proc.stop)
        self._procs.append(proc)
        return proc

    def signal_stop(self) -> None:
        """SIGTERM to every process but Redis at once, so their shutdowns overlap (stop() then waits)."""
        stores = self._stores()
        for proc in self._procs:
            if proc not in stores and proc.alive:
                proc.signal(signal.SIGTERM)

    def start_web(self, workers: int = 1, name: str = "web") -> Api:
        """A gunicorn (another one on a second call, on its own port: two web hosts on one Redis)."""
        self.web = self._owned(start_web(self.env, self.logs, workers=workers, name=name))
        self.api = Api(self.web.url)
        return self.api

    def start_worker(self, **env: str) -> Proc:
        """`python -m worker` with the stack's settings, plus `env` for this worker alone."""
        name = f"worker{len(self.workers) + 1}"
        proc = self._owned(start_worker({**self.worker_env, **env}, self.logs, name=name))
        self.workers.append(proc)
        return proc

    def kill_machine(self, proc: Proc) -> list[int]:
        """SIGKILL a worker and every process below it at once, as a host dies.

        Processes are found through /proc, not by process group: a child that called setpgrp (as a
        forking RQ worker's work horse does) would escape a group kill.
        """
        pids = [proc.popen.pid, *descendants(proc.popen.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.popen.wait(5)
        wait_for(lambda: all(process_gone(pid) for pid in pids), 5, f"{proc.name} and its forks to die")
        return pids

    def await_idle_workers(self, count: int) -> None:
        """Wait until `count` RQ workers are blocked in their dequeue call, waiting for jobs."""

        def blocked() -> bool:
            dequeues = [c for c in self.redis.client_list() if c["cmd"] in ("blmove", "blpop")]
            return sum("b" in c["flags"] for c in dequeues) >= count

        wait_for(blocked, 10, f"{count} worker(s) blocked in a dequeue")

    def kill_redis(self) -> None:
        """SIGKILL redis-server: a crash; the AOF (fsync on every write) is all that survives."""
        self.redis_proc.signal(signal.SIGKILL)
        self.redis_proc.popen.wait(5)

    def restart_redis(self) -> None:
        """A new redis-server on the same port and data directory, so clients reconnect by themselves."""
        self.redis_proc = self._owned(self._start_redis(port=self.redis_proc.port))

    def submitted(self, token: str = "111111", **pause: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """A fresh Belvo pause, stored through the API and answered with `token` (202 asserted)."""
        assert self.api is not None
        body = self.sandbox.pause(**pause)
        session = self.api.created(body)
        r = self.api.submit(session["id"], token, credential=session["client_secret"])
        assert r.status_code == 202, r.text
        return session, first(body)

    def record(self, session_id: str) -> dict[str, str]:
        """The session's Redis hash, read directly (a GET on the API would expire it on read)."""
        return {k.decode(): v.decode() for k, v in self.redis.hgetall(session_key(session_id)).items()}

    def outcome(self, session_id: str) -> tuple[str, str | None]:
        """The stored status and outcome code."""
        record = self.record(session_id)
        return record["status"], json.loads(record["outcome"] or "{}").get("code")

    def redis_outage(self, seconds: float, unless: Callable[[], bool] = lambda: False) -> None:
        """Crash Redis for `seconds` (the stimulus; cut short once `unless()` holds), then restart it."""
        down_at = time.time()
        self.kill_redis()
        wait_for(lambda: unless() or time.time() >= down_at + seconds, seconds + 1, "the outage to end")
        self.restart_redis()

    def status(self, session_id: str) -> str | None:
        """The stored status, None once the record is gone."""
        raw = self.redis.hget(session_key(session_id), "status")
        return raw.decode() if raw else None


@contextlib.contextmanager
def build_stack(
    root: Path,
    env: Mapping[str, str] | None = None,
    *,
    web_workers: int = 1,
    workers: int = 0,
    sentinel: bool = False,
) -> Iterator[Stack]:
    """Redis (AOF on, the ACL users), the sandbox, gunicorn with `web_workers` processes and `workers` RQ
    workers; with `sentinel`, Redis is a primary, a replica and three sentinels (tests/sentinels.py)."""
    with contextlib.ExitStack() as exits:
        stack = Stack(root, env or {}, exits, sentinel)
        stack.start_web(web_workers)
        for _ in range(workers):
            stack.start_worker()
        try:
            yield stack
            denied: list[dict[str, Any]] = []
            with contextlib.suppress(OSError, RedisError):  # a test may leave Redis down
                denied = acl_denials(stack.redis)
            assert not denied, f"ACL users were refused: {denied}"
        finally:
            stack.signal_stop()


def patches(sandbox: Sandbox, belvo_session: str) -> list[dict[str, Any]]:
    """The resume PATCHes the sandbox received for one Belvo session, in arrival order."""
    return sandbox.calls(method="PATCH", session=belvo_session)


def wait_status(stack: Stack, session_id: str, statuses: set[str], timeout: float) -> float:
    """Poll the stored status (not the API) until it is one of `statuses`; returns time.time() then."""
    wait_for(lambda: stack.status(session_id) in statuses, timeout, f"{session_id} to be {statuses}")
    return time.time()


def epoch(rfc3339: str) -> float:
    """An API timestamp (RFC 3339, UTC) as Unix seconds, comparable with the sandbox's call `at`."""
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
