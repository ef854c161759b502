"""Fixtures: a real redis-server, the sandbox, gunicorn and RQ workers, started once per test run.

Each test gets a clean session store (our keys deleted) and a reset sandbox; the processes stay up,
as they would in production, and are stopped at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from devstack.processes import Proc, start_redis, start_sandbox, start_web, start_worker
from tests.support import (
    API_KEY,
    BELVO_SECRET_ID,
    BELVO_SECRET_PASSWORD,
    CREDENTIALS_KEY,
    SECOND_API_KEY,
    Api,
    Sandbox,
    clear_store,
)


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def redis_server(stack_dir: Path) -> Iterator[Proc]:
    proc = start_redis(stack_dir / "redis", stack_dir / "logs")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def sandbox_proc(stack_dir: Path) -> Iterator[Proc]:
    proc = start_sandbox(stack_dir / "logs", BELVO_SECRET_ID, BELVO_SECRET_PASSWORD)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def service_env(redis_server: Proc, sandbox_proc: Proc) -> dict[str, str]:
    """The environment of the web and worker processes: short timings, so faults end quickly."""
    return {
        "REDIS_URL": redis_server.url,
        "API_KEYS": f"{API_KEY},{SECOND_API_KEY}",
        "BELVO_BASE_URL": sandbox_proc.url,
        "BELVO_SECRET_ID": BELVO_SECRET_ID,
        "BELVO_SECRET_PASSWORD": BELVO_SECRET_PASSWORD,
        "CREDENTIALS_KEY": CREDENTIALS_KEY,
        "UPSTREAM_TIMEOUT_SECONDS": "1",
        "RESUME_MAX_ATTEMPTS": "3",
        "RESUME_BACKOFF_SECONDS": "0.1",
        "LEASE_SECONDS": "2",
        "SWEEP_INTERVAL_SECONDS": "0.1",
        "SESSION_RETENTION_SECONDS": "3600",
        "LOG_LEVEL": "INFO",
        "RATE_LIMIT_PER_MINUTE": "0",
        "SESSION_RATE_LIMIT_PER_MINUTE": "0",
    }


@pytest.fixture(scope="session")
def web(service_env: dict[str, str], stack_dir: Path) -> Iterator[Proc]:
    proc = start_web(service_env, stack_dir / "logs")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def worker(service_env: dict[str, str], stack_dir: Path) -> Iterator[Proc]:
    proc = start_worker(service_env, stack_dir / "logs")
    yield proc
    proc.stop()


@pytest.fixture
def redis(redis_server: Proc) -> Iterator[Redis]:
    """A client on the test Redis, with the session store emptied first."""
    client = Redis.from_url(redis_server.url)
    clear_store(client)
    yield client
    client.close()


@pytest.fixture
def sandbox(sandbox_proc: Proc) -> Sandbox:
    sb = Sandbox(sandbox_proc.url)
    sb.reset()
    return sb


@pytest.fixture
def api(web: Proc, worker: Proc, redis: Redis, sandbox: Sandbox) -> Api:
    """The running service, with a clean store and sandbox."""
    return Api(web.url)
