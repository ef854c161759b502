"""The rate limits hold across processes: gunicorn with two workers, counting in one Redis."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from app.ratelimit import address_key
from devstack.processes import Proc
from tests.stack import Stack, build_stack
from tests.support import API_KEY
from tests.test_ratelimit import ADDRESS_LIMIT, LIMITS, assert_rate_limited, counted


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with build_stack(tmp_path_factory.mktemp("ratelimit"), LIMITS, web_workers=2) as st:
        yield st


def _workers_on(web: Proc, redis_port: int) -> tuple[set[int], set[int]]:
    """All gunicorn worker pids, and those holding a connection to our Redis (they served a session read)."""
    workers = psutil.Process(web.popen.pid).children()
    connected = {
        w.pid
        for w in workers
        if any(c.raddr and c.raddr.port == redis_port for c in w.net_connections(kind="tcp"))
    }
    return {w.pid for w in workers}, connected


def test_the_address_limit_holds_across_gunicorn_workers(stack: Stack) -> None:
    web, redis_port = stack.web, stack.redis_proc.port
    assert web is not None
    workers, connected = _workers_on(web, redis_port)
    assert len(workers) == 2
    assert connected == set(), "workers reach Redis before serving: tell them apart another way"
    url = f"{web.url}/v1/sessions/mfa_{'0' * 32}"
    headers = {"Authorization": f"Bearer {API_KEY}"}

    def read(_: int) -> requests.Response:
        return requests.get(url, headers=headers, timeout=10)  # a new connection each time

    answers: list[requests.Response] = []
    with ThreadPoolExecutor(8) as pool:
        # Per-process counting would allow 20 per worker: with 40+ requests and both workers
        # serving some, it would let more than 20 through. Bounded: at most 320 requests.
        for _ in range(20):
            answers += pool.map(read, range(16))
            connected = _workers_on(web, redis_port)[1]
            if len(answers) >= 2 * ADDRESS_LIMIT and connected == workers:
                break
    assert connected == workers, "one gunicorn worker served every request; the test proves nothing"
    statuses = Counter(r.status_code for r in answers)
    assert statuses[404] == ADDRESS_LIMIT, statuses  # allowed, and the session does not exist
    assert statuses[429] == len(answers) - ADDRESS_LIMIT, statuses
    key = address_key("127.0.0.1")
    assert_rate_limited(next(r for r in answers if r.status_code == 429), stack.redis, key)
    assert counted(stack.redis, key) == ADDRESS_LIMIT  # the refused ones are not counted
