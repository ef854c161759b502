"""Redis that survives losing a node, for the system tier: a primary, a replica and three sentinels.

All five are the one redis-server binary (devstack.processes.redis_executable), on loopback, with the
service's ACL users on both servers: the replica logs in to its primary as the replication user, the
sentinels log in to the servers as the Sentinel user, and clients log in to the sentinels with a
password of their own. tests/stack.py builds a stack on it with `build_stack(..., sentinel=True)`.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from pathlib import Path

from redis import Redis
from redis.sentinel import Sentinel

from devstack.processes import Proc, start_redis, start_sentinel, wait_for
from mfa import acl
from tests.support import REDIS_ADMIN_PASSWORD, REDIS_PASSWORDS

SERVICE = "mfa"
SENTINEL_PASSWORD = "test-sentinel-clients-password-0123456789"


class SentinelGroup:
    """The five processes, the settings each role connects with, and the moves of a failover test."""

    def __init__(self, root: Path, logs: Path, owned: Callable[[Proc], Proc]) -> None:
        self.root, self.logs, self._owned = root, logs, owned
        self.servers = {"redis-a": self._start_server("redis-a"), "redis-b": None}
        primary = self.servers["redis-a"]
        assert primary is not None
        self.servers["redis-b"] = self._start_server("redis-b", replica_of=primary.port)
        self.sentinels = [
            owned(
                start_sentinel(
                    root / f"sentinel-{i}",
                    logs,
                    primary.port,
                    SERVICE,
                    auth_user=acl.SENTINEL.name,
                    auth_password=REDIS_PASSWORDS["sentinel"],
                    password=SENTINEL_PASSWORD,
                    name=f"sentinel-{i}",
                )
            )
            for i in (1, 2, 3)
        ]
        self._sentinel = Sentinel(
            [("127.0.0.1", s.port) for s in self.sentinels],
            sentinel_kwargs={"password": SENTINEL_PASSWORD, "socket_timeout": 1, "socket_connect_timeout": 1},
        )
        # The tests' administrator client, following the primary through every failover.
        self.admin: Redis = self._sentinel.master_for(
            SERVICE, password=REDIS_ADMIN_PASSWORD, socket_timeout=5, socket_connect_timeout=1
        )
        wait_for(self._replica_in_sync, 20, "the replica to sync with the primary")

    def _start_server(self, name: str, replica_of: int = 0, port: int = 0) -> Proc:
        args = ["--masteruser", acl.REPLICA.name, "--masterauth", REDIS_PASSWORDS["replica"]]
        if replica_of:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        return self._owned(
            start_redis(
                self.root / name,
                self.logs,
                port=port,
                appendonly=True,
                name=name,
                passwords=REDIS_PASSWORDS,
                admin_password=REDIS_ADMIN_PASSWORD,
                extra_args=args,
            )
        )

    def _replica_in_sync(self) -> bool:
        return any(
            self._client(proc).info("replication").get("master_link_status") == "up"
            for proc in self.servers.values()
            if proc is not None and proc.alive
        )

    @staticmethod
    def _client(proc: Proc) -> Redis:
        return Redis.from_url(proc.url, socket_timeout=2, socket_connect_timeout=1)

    def env(self, role: str) -> dict[str, str]:
        """The settings of a process of `role` (web or worker): its ACL user, the primary by Sentinel."""
        return {
            "REDIS_URL": f"redis://{acl.USERS[role].name}:{REDIS_PASSWORDS[role]}@{SERVICE}/0",
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels),
            "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        }

    def primary_port(self) -> int:
        """The primary's port, as the sentinels say."""
        return int(self._sentinel.discover_master(SERVICE)[1])

    def procs(self) -> list[Proc]:
        """Every process of the group."""
        return [*(p for p in self.servers.values() if p is not None), *self.sentinels]

    def kill_primary(self) -> str:
        """SIGKILL the primary, as its host dies; returns its name."""
        port = self.primary_port()
        name, proc = next((n, p) for n, p in self.servers.items() if p is not None and p.port == port)
        proc.signal(signal.SIGKILL)
        proc.popen.wait(5)
        return name

    def await_failover(self, from_port: int, timeout: float) -> int:
        """Wait until the sentinels name another primary; returns its port."""
        wait_for(lambda: self.primary_port() != from_port, timeout, "the sentinels to promote the replica")
        return self.primary_port()

    def restart(self, name: str) -> None:
        """Start a dead server again on its port and data, as a supervisor would; Sentinel demotes it."""
        old = self.servers[name]
        assert old is not None and not old.alive
        self.servers[name] = self._start_server(name, port=old.port)
        wait_for(self._replica_in_sync, 30, f"{name} to rejoin as a replica")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.admin.close()
