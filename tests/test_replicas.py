"""REDIS_WAIT_REPLICAS: a token submission is answered 202 only once a replica holds it.

A real replica (a second redis-server, logged in to the test Redis as the replication ACL user) is
started for the test. The failover itself, with Sentinel, is tests/system/test_failover.py.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import pytest
from redis import Redis

from devstack.processes import Proc, start_redis, wait_for
from mfa import acl
from mfa.keys import session_key
from tests.support import REDIS_PASSWORDS

WAIT_TIMEOUT_MS = 300
READY_KEY = "test:replica-ready"  # written and deleted by the fixture, to see the replica acknowledge


def _acknowledges(master: Redis) -> bool:
    """A write on the master is acknowledged by a replica within 200 ms (WAIT, on the connection that
    wrote: a pipeline holds one)."""
    with master.pipeline(transaction=False) as pipe:
        pipe.set(READY_KEY, 1)
        pipe.wait(1, 200)
        pipe.delete(READY_KEY)
        return bool(pipe.execute()[1] >= 1)


@pytest.fixture
def replica_proc(redis_server: Proc, tmp_path: Path) -> Iterator[Proc]:
    """A replica of the test Redis, in sync; stopped (and so detached) after the test."""
    proc = start_redis(
        tmp_path / "replica",
        tmp_path / "logs",
        name="replica",
        extra_args=[
            "--replicaof",
            "127.0.0.1",
            str(redis_server.port),
            "--masteruser",
            acl.REPLICA.name,
            "--masterauth",
            REDIS_PASSWORDS["replica"],
        ],
    )
    client = Redis.from_url(proc.url, socket_timeout=5)
    wait_for(lambda: client.info("replication")["master_link_status"] == "up", 20, "the replica to sync")
    client.close()
    # The replica's link is up as soon as it has loaded the master's data, but the master streams writes
    # to it, and so counts it for WAIT, only after the replica's first REPLCONF ACK (sent once a second;
    # "Waiting for REPLCONF ACK from slave to enable streaming" in the master's log): until then a WAIT
    # in the test would time out for a reason the test is not about.
    with Redis.from_url(redis_server.url, socket_timeout=5) as master:
        wait_for(lambda: _acknowledges(master), 20, "the replica to acknowledge a write")
    yield proc
    proc.signal(signal.SIGCONT)
    proc.stop()


@pytest.fixture
def replica(replica_proc: Proc) -> Iterator[Redis]:
    client = Redis.from_url(replica_proc.url, socket_timeout=5)
    yield client
    client.close()


def test_a_202_waits_for_the_replica_and_is_on_it(
    make_api, sandbox, replica_proc: Proc, replica: Redis
) -> None:
    api = make_api(REDIS_WAIT_REPLICAS="1", REDIS_WAIT_TIMEOUT_MS="5000")
    s = api.created(sandbox.pause())
    replica_proc.signal(signal.SIGSTOP)  # the replica stalls: it cannot acknowledge anything
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(api.submit, s["id"], "111111", credential=s["client_secret"])
        with pytest.raises(FutureTimeout):
            answer.result(timeout=0.5)  # no answer while no replica holds the submission
        replica_proc.signal(signal.SIGCONT)
        r = answer.result(timeout=10)
    assert r.status_code == 202, r.text
    # Read at once from the replica, no waiting: the answer was given only after it acknowledged.
    assert replica.hget(session_key(s["id"]), "status") == b"submitted"


def test_a_cancel_is_already_on_the_replica(make_api, sandbox, replica: Redis) -> None:
    api = make_api(REDIS_WAIT_REPLICAS="1", REDIS_WAIT_TIMEOUT_MS=str(WAIT_TIMEOUT_MS))
    s = api.created(sandbox.pause())
    assert api.cancel(s["id"]).status_code == 200
    assert replica.hget(session_key(s["id"]), "status") == b"cancelled"


def test_without_enough_replicas_a_submission_answers_503_after_the_timeout(make_api, sandbox) -> None:
    api = make_api(REDIS_WAIT_REPLICAS="1", REDIS_WAIT_TIMEOUT_MS=str(WAIT_TIMEOUT_MS))
    s = api.created(sandbox.pause())
    started = time.monotonic()
    r = api.submit(s["id"], "111111", credential=s["client_secret"], headers={"Idempotency-Key": "k-1"})
    took = time.monotonic() - started
    assert r.status_code == 503 and r.json()["code"] == "store_unavailable", r.text
    assert r.headers["Retry-After"]
    assert WAIT_TIMEOUT_MS / 1000 <= took < 5, "WAIT is bounded by its timeout, far below the request's"
    # The primary has the submission; a retry learns so instead of getting a replayed 503.
    retry = api.submit(s["id"], "111111", credential=s["client_secret"], headers={"Idempotency-Key": "k-1"})
    assert retry.status_code == 409 and retry.json()["code"] == "session_not_awaiting_token"


def test_off_by_default_a_submission_waits_for_no_replica(api, sandbox) -> None:
    s = api.created(sandbox.pause())
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
