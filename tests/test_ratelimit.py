"""Rate limits over real HTTP: gunicorn with two workers counting in one Redis.

This module runs its own redis-server and gunicorn (the shared stack runs with limits off), with
20 requests a minute per client address and 5 token submissions a minute per session.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests
from redis import Redis

from app.config import Settings
from app.ratelimit import KEY_PREFIX, WINDOW_MS, address_key, session_counter_key
from devstack.processes import Proc, start_redis, start_web
from tests.support import API_KEY, Api, clear_store

ADDRESS_LIMIT = 20
SESSION_LIMIT = 5


def _env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "API_KEYS": API_KEY,
        "RATE_LIMIT_PER_MINUTE": str(ADDRESS_LIMIT),
        "SESSION_RATE_LIMIT_PER_MINUTE": str(SESSION_LIMIT),
        "LOG_LEVEL": "INFO",
        **extra,
    }


@pytest.fixture(scope="module")
def rl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ratelimit")


@pytest.fixture(scope="module")
def rl_redis(rl_dir: Path) -> Iterator[Proc]:
    proc = start_redis(rl_dir / "redis", rl_dir / "logs", name="rl-redis")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def rl_web(rl_redis: Proc, rl_dir: Path) -> Iterator[Proc]:
    proc = start_web(_env(rl_redis.url), rl_dir / "logs", workers=2, name="rl-web")
    yield proc
    proc.stop()


@pytest.fixture
def store(rl_redis: Proc) -> Iterator[Redis]:
    """The module's Redis, emptied of sessions and counters: every test starts with full budgets."""
    client = Redis.from_url(rl_redis.url)
    clear_store(client)
    yield client
    client.close()


@pytest.fixture
def api(rl_web: Proc, store: Redis) -> Api:
    return Api(rl_web.url)


def _pause() -> dict:
    """A 428 body as Belvo sends it; no worker runs here, so no sandbox is needed."""
    return {"session": uuid.uuid4().hex, "link": str(uuid.uuid4()), "expiry": 600}


def _assert_rate_limited(r: requests.Response, store: Redis, key: str) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "rate_limited" and body["status"] == 429 and body["title"]
    assert body["request_id"] == r.headers["X-Request-ID"]
    retry_after = int(r.headers["Retry-After"])
    # The window opened with the key's first hit; Retry-After is what is left of it, rounded up.
    left = store.pttl(key)
    assert 0 < left <= WINDOW_MS
    assert 1 <= retry_after <= WINDOW_MS // 1000
    assert abs(retry_after - math.ceil(left / 1000)) <= 1


def _workers_on(web: Proc, redis_port: int) -> tuple[set[int], set[int]]:
    """All gunicorn worker pids, and those holding a connection to our Redis (they served a session read)."""
    workers = psutil.Process(web.popen.pid).children()
    connected = {
        w.pid
        for w in workers
        if any(c.raddr and c.raddr.port == redis_port for c in w.net_connections(kind="tcp"))
    }
    return {w.pid for w in workers}, connected


def test_the_address_limit_holds_across_gunicorn_workers(rl_redis, rl_dir, store):
    # A fresh gunicorn, so a worker that holds a Redis connection served a request of this test.
    web = start_web(_env(rl_redis.url), rl_dir / "logs", workers=2, name="rl-web-fresh")
    try:
        workers, connected = _workers_on(web, rl_redis.port)
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
                connected = _workers_on(web, rl_redis.port)[1]
                if len(answers) >= 2 * ADDRESS_LIMIT and connected == workers:
                    break
        assert connected == workers, "one gunicorn worker served every request; the test proves nothing"
        statuses = Counter(r.status_code for r in answers)
        assert statuses[404] == ADDRESS_LIMIT, statuses  # allowed, and the session does not exist
        assert statuses[429] == len(answers) - ADDRESS_LIMIT, statuses
        _assert_rate_limited(
            next(r for r in answers if r.status_code == 429), store, address_key("127.0.0.1")
        )
        assert int(store.get(address_key("127.0.0.1"))) == len(answers)
    finally:
        web.stop()


def test_the_address_budget_covers_reads_submissions_and_cancels_not_creation(api, store):
    s = api.created(_pause())
    for _ in range(ADDRESS_LIMIT - 2):
        assert api.get(s["id"]).status_code == 200
    assert api.cancel(s["id"], credential=s["client_secret"]).status_code == 200
    assert api.submit(s["id"], credential=s["client_secret"]).status_code == 409  # the 20th: cancelled
    key = address_key("127.0.0.1")
    _assert_rate_limited(api.get(s["id"]), store, key)
    _assert_rate_limited(api.submit(s["id"], credential=s["client_secret"]), store, key)
    _assert_rate_limited(api.cancel(s["id"]), store, key)
    body = api.get(s["id"]).json()
    assert "client address" in body["detail"]
    # Creation is the backend's call, authenticated by API key: not limited per address.
    assert api.create(_pause()).status_code == 201
    # Preflights carry no credential and touch no session: not counted, not refused.
    r = requests.options(f"{api.url}/v1/sessions/{s['id']}", timeout=10)
    assert r.status_code == 200


def test_the_session_limit_counts_submissions_that_open_the_session(api, store):
    s = api.created(_pause())
    other = api.created(_pause())
    # Whoever only knows the id cannot spend the budget of whoever holds the secret.
    for _ in range(3):
        assert api.submit(s["id"], credential="mcs_not-this-sessions-secret").status_code == 404
    assert store.get(session_counter_key(s["id"])) is None
    answers = [api.submit(s["id"], credential=s["client_secret"]).status_code for _ in range(SESSION_LIMIT)]
    assert answers == [202] + [409] * (SESSION_LIMIT - 1)
    key = session_counter_key(s["id"])
    r = api.submit(s["id"], credential=s["client_secret"])
    _assert_rate_limited(r, store, key)
    assert "session" in r.json()["detail"]
    _assert_rate_limited(api.submit(s["id"]), store, key)  # the API key spends the same budget
    # Independent of the address budget (10 of 20 spent so far) and of other sessions.
    assert api.get(s["id"]).status_code == 200
    assert api.submit(other["id"], credential=other["client_secret"]).status_code == 202
    assert int(store.get(address_key("127.0.0.1"))) == 12
    assert int(store.get(key)) == SESSION_LIMIT + 2


def test_counters_live_in_redis_with_the_window_as_ttl(api, store):
    s = api.created(_pause())
    assert api.get(s["id"]).status_code == 200
    assert api.submit(s["id"], credential=s["client_secret"]).status_code == 202
    keys = sorted(k.decode() for k in store.scan_iter(KEY_PREFIX + "*"))
    assert keys == [address_key("127.0.0.1"), session_counter_key(s["id"])]
    for key in keys:
        assert 0 < store.pttl(key) <= WINDOW_MS, key
    assert store.get(keys[0]) == b"2" and store.get(keys[1]) == b"1"
    # A new window opens once the old one's key is gone.
    store.delete(*keys)
    assert api.get(s["id"]).status_code == 200
    assert store.get(address_key("127.0.0.1")) == b"1"


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(api, rl_redis, rl_dir, store):
    forged = {"X-Forwarded-For": "203.0.113.7"}
    assert api.request("GET", f"/v1/sessions/mfa_{'0' * 32}", headers=forged).status_code == 404
    assert store.exists(address_key("127.0.0.1")) and not store.exists(address_key("203.0.113.7"))
    web = start_web(
        _env(rl_redis.url, TRUSTED_PROXY_COUNT="1"), rl_dir / "logs", workers=1, name="rl-web-proxied"
    )
    try:
        proxied = Api(web.url)
        assert proxied.request("GET", f"/v1/sessions/mfa_{'0' * 32}", headers=forged).status_code == 404
        assert store.get(address_key("203.0.113.7")) == b"1"
    finally:
        web.stop()


def test_the_defaults_let_fifty_racing_submits_of_one_step_answer_202_once_then_409(rl_redis, rl_dir, store):
    defaults = Settings.from_env({})
    assert (defaults.rate_limit_per_minute, defaults.session_rate_limit_per_minute) == (1200, 60)
    env = {k: v for k, v in _env(rl_redis.url).items() if "RATE_LIMIT" not in k}
    web = start_web(env, rl_dir / "logs", workers=2, name="rl-web-defaults")
    try:
        api = Api(web.url)
        s = api.created(_pause())
        with ThreadPoolExecutor(50) as pool:
            answers = list(
                pool.map(lambda _: api.submit(s["id"], credential=s["client_secret"]).status_code, range(50))
            )
        assert sorted(answers) == [202] + [409] * 49
        assert int(store.get(session_counter_key(s["id"]))) == 50
    finally:
        web.stop()
