"""Rate limits of the app, counted in Redis: 20 requests a minute per client address, 5 token
submissions a minute per session, 3 failed authentications a minute per address; each a sliding
window. That the counts hold across gunicorn processes is proved on real processes in
tests/system/test_ratelimit_processes.py.
"""

from __future__ import annotations

import math
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from redis import Redis

from app.ratelimit import (
    BUCKETS,
    KEY_PREFIX,
    WINDOW_MS,
    Budgets,
    address_key,
    auth_failure_key,
    session_counter_key,
)
from mfa.settings import Settings
from tests.inprocess import InProcessApi
from tests.support import API_KEY

ADDRESS_LIMIT = 20
SESSION_LIMIT = 5
AUTH_FAILURE_LIMIT = 3
LIMITS = {
    "RATE_LIMIT_PER_MINUTE": str(ADDRESS_LIMIT),
    "SESSION_RATE_LIMIT_PER_MINUTE": str(SESSION_LIMIT),
    "AUTH_FAILURE_LIMIT_PER_MINUTE": str(AUTH_FAILURE_LIMIT),
}
SPAN_MS = WINDOW_MS + WINDOW_MS // BUCKETS  # the longest a counted request stays in its window


def counted(store: Redis, key: str) -> int:
    """The requests a budget's buckets hold now."""
    return sum(int(n) for n in store.hvals(key))


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
    """A 429 problem whose Retry-After is within the window, the key's buckets still live."""
    assert r.status_code == 429, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "rate_limited" and body["status"] == 429 and body["title"]
    assert body["request_id"] == r.headers["X-Request-ID"]
    retry_after = int(r.headers["Retry-After"])
    assert 0 < store.pttl(key) <= SPAN_MS
    assert 1 <= retry_after <= math.ceil(SPAN_MS / 1000)


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
    # Independent of the address budget (8 of 20 spent so far) and of other sessions.
    assert api.get(s["id"]).status_code == 200
    assert api.submit(other["id"], credential=other["client_secret"]).status_code == 202
    assert counted(store, address_key("127.0.0.1")) == 3 + SESSION_LIMIT + 2  # refused ones not counted
    assert counted(store, key) == SESSION_LIMIT


def test_counters_live_in_redis_as_a_few_buckets_with_the_window_as_ttl(api, store):
    s = api.created(_pause())
    assert api.get(s["id"]).status_code == 200
    assert api.submit(s["id"], credential=s["client_secret"]).status_code == 202
    keys = sorted(k.decode() for k in store.scan_iter(KEY_PREFIX + "*"))
    assert keys == [address_key("127.0.0.1"), session_counter_key(s["id"])]
    for key in keys:
        assert 0 < store.pttl(key) <= SPAN_MS, key
        assert 1 <= store.hlen(key) <= 2  # one bucket per 10 s touched
    assert counted(store, keys[0]) == 2 and counted(store, keys[1]) == 1


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(api, make_api, store):
    forged = {"X-Forwarded-For": "203.0.113.7"}
    assert api.request("GET", f"/v1/sessions/mfa_{'0' * 32}", headers=forged).status_code == 404
    assert store.exists(address_key("127.0.0.1")) and not store.exists(address_key("203.0.113.7"))
    proxied = make_api(**LIMITS, TRUSTED_PROXY_COUNT="1")
    assert proxied.request("GET", f"/v1/sessions/mfa_{'0' * 32}", headers=forged).status_code == 404
    assert counted(store, address_key("203.0.113.7")) == 1


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
    assert counted(store, session_counter_key(s["id"])) == 50


# --- the sliding window, on Redis with the clock driven by the test ---------------------------------


def test_no_minute_passes_more_than_the_limit_across_any_boundary(store):
    """A fixed window passes the limit just before its boundary and the limit again just after it:
    twice the limit within a second. The sliding window refuses the second burst until the first
    has slid out, and says when in Retry-After."""
    budgets = Budgets(store, auth_failures=0, address=ADDRESS_LIMIT, session=0)
    key = address_key("198.51.100.1")
    t = 1_700_000_059_900  # 100 ms before a whole minute
    assert [budgets.check("", key, "", t + i)[0] for i in range(ADDRESS_LIMIT)] == [0] * ADDRESS_LIMIT
    after_boundary = [budgets.check("", key, "", t + 200 + i) for i in range(ADDRESS_LIMIT)]
    assert {which for which, _ in after_boundary} == {2}  # every one refused, none counted
    assert counted(store, key) == ADDRESS_LIMIT
    wait_ms = after_boundary[0][1]
    assert WINDOW_MS - 200 <= wait_ms <= SPAN_MS
    assert budgets.check("", key, "", t + 200 + wait_ms - 1)[0] == 2  # Retry-After is not early
    assert budgets.check("", key, "", t + 200 + wait_ms) == (0, 0)  # nor late


def test_a_steady_stream_passes_exactly_the_limit_per_window(store):
    """One request a second for five minutes against 20 a minute: in every window of 60 s, at most 20."""
    budgets = Budgets(store, auth_failures=0, address=ADDRESS_LIMIT, session=0)
    key = address_key("198.51.100.2")
    start = 1_700_000_000_000
    allowed = [start + s * 1000 for s in range(300) if budgets.check("", key, "", start + s * 1000) == (0, 0)]
    for at in allowed:
        assert sum(at <= other < at + WINDOW_MS for other in allowed) <= ADDRESS_LIMIT
    assert len(allowed) >= 300 // 70 * ADDRESS_LIMIT  # and it keeps serving: 20 in every 60-70 s


# --- repeated 401s ---------------------------------------------------------------------------------


def test_repeated_401s_from_one_address_are_throttled_for_every_request(api, store):
    s = api.created(_pause())
    for _ in range(AUTH_FAILURE_LIMIT):
        assert api.get(s["id"], credential=None).status_code == 401
    assert api.request("POST", "/v1/sessions", credential="not-an-api-key", json={}).status_code == 429
    assert counted(store, auth_failure_key("127.0.0.1")) == AUTH_FAILURE_LIMIT
    # Refused whatever the credential, so the 429 tells a guesser nothing about a key it tries.
    for r in (api.create(_pause()), api.get(s["id"]), api.request("POST", "/v1/links", json={})):
        assert_rate_limited(r, store, auth_failure_key("127.0.0.1"))
        assert "failed authentications" in r.json()["detail"]
    assert api.request("GET", "/healthz", credential=None).status_code == 200  # probes stay open


def test_only_401s_count_as_failed_authentications(api, store):
    s = api.created(_pause())
    for _ in range(AUTH_FAILURE_LIMIT + 2):
        assert api.get(s["id"], credential="mcs_not-this-sessions-secret").status_code == 404
        assert api.request("POST", "/v1/sessions", json={"token_required": []}).status_code == 422
    assert not store.exists(auth_failure_key("127.0.0.1"))
    assert api.get(s["id"], credential=API_KEY).status_code == 200
