"""Rate limits of the app, counted in Redis: 20 requests a minute per client address and 5 token
submissions a minute per session. That the counts hold across gunicorn processes is proved on real
processes in tests/system/test_ratelimit_processes.py.
"""

from __future__ import annotations

import math
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from redis import Redis

from app.ratelimit import KEY_PREFIX, WINDOW_MS, address_key, session_counter_key
from mfa.settings import Settings
from tests.inprocess import InProcessApi

ADDRESS_LIMIT = 20
SESSION_LIMIT = 5
LIMITS = {"RATE_LIMIT_PER_MINUTE": str(ADDRESS_LIMIT), "SESSION_RATE_LIMIT_PER_MINUTE": str(SESSION_LIMIT)}


@pytest.fixture
def store(redis: Redis) -> Redis:
    """The test's Redis, empty: every test starts with full budgets."""
    return redis


@pytest.fixture
def api(make_api) -> InProcessApi:
    return make_api(**LIMITS)


def _pause() -> dict:
    """A 428 body as Belvo sends it; no job runs here, so no sandbox is needed."""
    return {"session": uuid.uuid4().hex, "link": str(uuid.uuid4()), "expiry": 600}


def assert_rate_limited(r: Any, store: Redis, key: str) -> None:
    """A 429 problem whose Retry-After is what is left of the key's window, rounded up."""
    assert r.status_code == 429, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "rate_limited" and body["status"] == 429 and body["title"]
    assert body["request_id"] == r.headers["X-Request-ID"]
    retry_after = int(r.headers["Retry-After"])
    left = store.pttl(key)
    assert 0 < left <= WINDOW_MS
    assert 1 <= retry_after <= WINDOW_MS // 1000
    assert abs(retry_after - math.ceil(left / 1000)) <= 1


def test_the_address_budget_covers_reads_submissions_and_cancels_not_creation(api, store):
    s = api.created(_pause())
    for _ in range(ADDRESS_LIMIT - 2):
        assert api.get(s["id"]).status_code == 200
    assert api.cancel(s["id"], credential=s["client_secret"]).status_code == 200
    assert api.submit(s["id"], credential=s["client_secret"]).status_code == 409  # the 20th: cancelled
    key = address_key("127.0.0.1")
    assert_rate_limited(api.get(s["id"]), store, key)
    assert_rate_limited(api.submit(s["id"], credential=s["client_secret"]), store, key)
    assert_rate_limited(api.cancel(s["id"]), store, key)
    body = api.get(s["id"]).json()
    assert "client address" in body["detail"]
    # Creation is the backend's call, authenticated by API key: not limited per address.
    assert api.create(_pause()).status_code == 201
    # Preflights carry no credential and touch no session: not counted, not refused.
    assert api.request("OPTIONS", f"/v1/sessions/{s['id']}", credential=None).status_code == 200


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
    assert_rate_limited(r, store, key)
    assert "session" in r.json()["detail"]
    assert_rate_limited(api.submit(s["id"]), store, key)  # the API key spends the same budget
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


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(api, make_api, store):
    forged = {"X-Forwarded-For": "203.0.113.7"}
    assert api.request("GET", f"/v1/sessions/mfa_{'0' * 32}", headers=forged).status_code == 404
    assert store.exists(address_key("127.0.0.1")) and not store.exists(address_key("203.0.113.7"))
    proxied = make_api(**LIMITS, TRUSTED_PROXY_COUNT="1")
    assert proxied.request("GET", f"/v1/sessions/mfa_{'0' * 32}", headers=forged).status_code == 404
    assert store.get(address_key("203.0.113.7")) == b"1"


def test_the_defaults_let_fifty_racing_submits_of_one_step_answer_202_once_then_409(make_api, store):
    defaults = Settings.from_env({})
    assert (defaults.rate_limit_per_minute, defaults.session_rate_limit_per_minute) == (1200, 60)
    api = make_api(RATE_LIMIT_PER_MINUTE="", SESSION_RATE_LIMIT_PER_MINUTE="")  # empty: the defaults
    s = api.created(_pause())
    with ThreadPoolExecutor(50) as pool:
        answers = list(
            pool.map(lambda _: api.submit(s["id"], credential=s["client_secret"]).status_code, range(50))
        )
    assert sorted(answers) == [202] + [409] * 49
    assert int(store.get(session_counter_key(s["id"]))) == 50
