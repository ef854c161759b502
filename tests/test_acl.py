"""The Redis ACL users (mfa/acl.py) on a real redis-server.

Every other test of both tiers runs the web and the worker as these users, and fails on any command they
were refused (tests/conftest.py no_acl_denials, tests/stack.py build_stack): that is the proof that the
service works with them. Here: what each credential may NOT do, and the ACL file for a deployment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError
from rq import Queue, SimpleWorker

from devstack.processes import ROOT, Proc, free_port, redis_executable, spawn, wait_for
from mfa import acl
from tests.support import REDIS_ADMIN_PASSWORD, REDIS_PASSWORDS, SERVICE_ENV, acl_denials

QUEUE = SERVICE_ENV.get("RESUME_QUEUE", "belvo-resume")


@pytest.fixture
def as_role(redis_server: Proc, redis: Redis) -> Iterator[Callable[[str], Redis]]:
    """Clients logged in as a role's ACL user; the denials they provoke are checked, then cleared."""
    clients: list[Redis] = []

    def login(role: str) -> Redis:
        clients.append(Redis.from_url(redis_server.extra["urls"][role], socket_timeout=5))
        return clients[-1]

    yield login
    for client in clients:
        client.close()
    acl_denials(redis)  # this module's refusals are meant; the autouse check must not see them


# What only the worker does: take jobs, keep RQ's registries and its own registration, name its
# connection, listen on RQ's command channel. Lua cannot widen a grant: scripts are checked too.
WORKER_ONLY = {
    "dequeue a job": lambda r: r.lmove(f"rq:queue:{QUEUE}", "rq:intermediate", "LEFT", "RIGHT"),
    "pop a job": lambda r: r.lpop(f"rq:queue:{QUEUE}"),
    "drop a job from a queue": lambda r: r.lrem(f"rq:queue:{QUEUE}", 0, "job"),
    "register as a worker": lambda r: r.hset("rq:worker:intruder", "state", "idle"),
    "list the workers": lambda r: r.smembers("rq:workers"),
    "fill a job registry": lambda r: r.zadd(f"rq:wip:{QUEUE}", {"job": 1}),
    "name its connection": lambda r: r.client_setname("intruder"),
    "list the clients": lambda r: r.client_list(),
    "pop a job from a script": lambda r: r.eval("return redis.call('LPOP', KEYS[1])", 1, f"rq:queue:{QUEUE}"),
    "listen on RQ's command channel": lambda r: _subscribe(r, "rq:pubsub:intruder"),
}
# What neither role may do.
NOBODY = {
    "empty the database": lambda r: r.flushdb(),
    "empty every database": lambda r: r.flushall(),
    "read the configuration": lambda r: r.config_get("*"),
    "scan every key name": lambda r: r.keys("*"),
    "touch a key outside the service's": lambda r: r.set("other-app:key", "1"),
    "read the users": lambda r: r.acl_list(),
    "make the server a replica": lambda r: r.execute_command("REPLICAOF", "127.0.0.1", "1"),
    "change the configuration": lambda r: r.config_set("slowlog-max-len", "128"),
    "switch the database": lambda r: r.execute_command("SELECT", "1"),
}


def _subscribe(client: Redis, channel: str) -> object:
    pubsub = client.pubsub()
    pubsub.subscribe(channel)
    return pubsub.get_message(timeout=2)  # the server's answer to SUBSCRIBE: a confirmation or a refusal


def _refused(exc: ResponseError) -> bool:
    """An ACL refusal, whether sent directly (NOPERM) or from inside a script."""
    return isinstance(exc, NoPermissionError) or "can't run this command" in str(exc)


@pytest.mark.parametrize("what", sorted(WORKER_ONLY))
def test_the_worker_may_do_what_the_web_is_refused(what: str, as_role) -> None:
    with pytest.raises(ResponseError) as refusal:
        WORKER_ONLY[what](as_role("web"))
    assert _refused(refusal.value), refusal.value
    try:
        WORKER_ONLY[what](as_role("worker"))
    except ResponseError as exc:  # a wrong type or the like is fine; a refusal is not
        assert not _refused(exc), exc


@pytest.mark.parametrize("role", ["web", "worker"])
@pytest.mark.parametrize("what", sorted(NOBODY))
def test_neither_credential_may_administer_redis(what: str, role: str, as_role) -> None:
    with pytest.raises(NoPermissionError):
        NOBODY[what](as_role(role))


def test_the_web_credential_cannot_run_an_rq_worker(as_role) -> None:
    web = as_role("web")
    with warnings.catch_warnings(), pytest.raises(NoPermissionError):
        warnings.simplefilter("ignore")  # RQ warns that it cannot name the connection, then goes on
        SimpleWorker([Queue(QUEUE, connection=web)], connection=web).work(burst=True)


def test_no_client_gets_in_without_its_password(redis_server: Proc) -> None:
    anonymous = Redis(port=redis_server.port, socket_timeout=5)
    with pytest.raises(AuthenticationError):
        anonymous.ping()
    wrong = Redis(port=redis_server.port, username="mfa-web", password="not-the-password", socket_timeout=5)
    with pytest.raises(AuthenticationError):
        wrong.ping()


def test_the_acl_file_for_a_deployment_loads_with_the_same_users(tmp_path: Path, redis: Redis) -> None:
    path = tmp_path / "users.acl"
    env = {
        **os.environ,
        "REDIS_WEB_PASSWORD": REDIS_PASSWORDS["web"],
        "REDIS_WORKER_PASSWORD": REDIS_PASSWORDS["worker"],
        "REDIS_ADMIN_PASSWORD": REDIS_ADMIN_PASSWORD,
    }
    command = [sys.executable, "-m", "mfa.acl", str(path)]
    written = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert written.returncode == 0, written.stderr
    text = path.read_text()
    assert not {REDIS_PASSWORDS["web"], REDIS_PASSWORDS["worker"], REDIS_ADMIN_PASSWORD} & set(text.split())
    port = free_port()
    argv = [
        redis_executable(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--aclfile",
        str(path),
    ]
    server = spawn("redis-aclfile", argv, tmp_path)
    try:
        admin = Redis(port=port, password=REDIS_ADMIN_PASSWORD, socket_timeout=5)
        wait_for(admin.ping, 20, "redis-server with the ACL file")
        for role in ("web", "worker"):
            name = acl.USERS[role].name
            assert Redis(port=port, username=name, password=REDIS_PASSWORDS[role], socket_timeout=5).ping()
            # The same grants as the users every other test runs as (installed with ACL SETUSER).
            assert _grants(admin, name) == _grants(redis, name)
        with pytest.raises(AuthenticationError):
            Redis(port=port, socket_timeout=5).ping()
    finally:
        server.stop()


def test_without_an_admin_password_the_default_user_is_off() -> None:
    first_line = acl.acl_file({"web": "w" * 16, "worker": "k" * 16}).splitlines()[0]
    assert first_line == "user default reset off"


def _grants(admin: Redis, name: str) -> tuple[object, ...]:
    """A user's flags, commands, keys and channels as the server reports them."""
    user = admin.acl_getuser(name)
    return tuple(tuple(sorted(map(str, user[field]))) for field in ("flags", "commands", "keys", "channels"))


def test_a_wrong_redis_password_answers_503_not_500(make_api, redis_server: Proc) -> None:
    api = make_api(REDIS_URL=f"redis://mfa-web:not-the-password@127.0.0.1:{redis_server.port}/0")
    r = api.get("mfa_" + "0" * 32)
    assert r.status_code == 503 and r.json()["code"] == "store_unavailable"
