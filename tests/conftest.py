"""Fixtures of the fast tier: a real redis-server and the sandbox, started once per run; the service
in-process (tests/inprocess.py). Nothing runs in the background: each test starts from an empty Redis.

The system tier (tests/system/) starts stacks of real processes with tests/stack.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from devstack.processes import Proc, start_redis
from tests.inprocess import InProcessApi, sandbox_in_thread, service_api
from tests.support import REDIS_ADMIN_PASSWORD, REDIS_PASSWORDS, SERVICE_ENV, Sandbox, assert_no_acl_denials


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    root = tmp_path_factory.mktemp("redis")
    proc = start_redis(
        root / "data", root / "logs", passwords=REDIS_PASSWORDS, admin_password=REDIS_ADMIN_PASSWORD
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    with sandbox_in_thread() as url:
        yield url


@pytest.fixture(autouse=True)
def no_acl_denials(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that used the fast tier's Redis leaves no ACL denial behind: the web and the worker were
    granted every command they sent, even those whose errors the code would swallow."""
    yield
    if "redis_server" in request.fixturenames:
        assert_no_acl_denials(Redis.from_url(request.getfixturevalue("redis_server").url))


@pytest.fixture
def redis(redis_server: Proc) -> Iterator[Redis]:
    """A client on the test Redis, emptied first: no process but this test's uses it."""
    client = Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def sandbox(sandbox_url: str) -> Sandbox:
    sb = Sandbox(sandbox_url)
    sb.reset()
    return sb


@pytest.fixture
def service_env(redis_server: Proc, sandbox_url: str) -> dict[str, str]:
    """The web's settings against this run's Redis (as the web's ACL user) and sandbox."""
    return {**SERVICE_ENV, "REDIS_URL": redis_server.extra["urls"]["web"], "BELVO_BASE_URL": sandbox_url}


@pytest.fixture
def make_api(
    service_env: dict[str, str], redis_server: Proc, redis: Redis
) -> Iterator[Callable[..., InProcessApi]]:
    """An in-process service with settings of the test's own (`make_api(RATE_LIMIT_PER_MINUTE="5")`);
    its jobs run as the worker's ACL user."""
    made: list[InProcessApi] = []

    def make(**env: str) -> InProcessApi:
        worker_url = redis_server.extra["urls"]["worker"]
        made.append(service_api({**service_env, **env}, worker_redis_url=worker_url))
        return made[-1]

    yield make
    for api in made:
        api.close()  # its change feed's subscription, if a stream or long-poll started one


@pytest.fixture
def api(make_api: Callable[..., InProcessApi], sandbox: Sandbox) -> InProcessApi:
    """The service with the standard test settings, a clean store and a reset sandbox."""
    return make_api()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
