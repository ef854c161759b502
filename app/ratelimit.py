"""Rate limits, counted in Redis so they hold across processes and hosts.

Three budgets per minute, each a sliding window:
  mfa:rl:addr:{client address}   reads (a stream's opening too), token submissions and cancels from one
                                 client address
  mfa:rl:session:{session id}    token submissions to one session
  mfa:rl:auth:{client address}   401 answers to one client address; once it is spent, every /v1
                                 request from that address answers 429 until the window slides on

A window is six buckets of ten seconds (a Redis hash, bucket index -> count). A request is allowed
while the buckets of the last 60-70 s hold fewer than the limit, so no 60 s ever passes more than the
limit: a fixed window lets twice the limit through across its boundary, and a token bucket lets a
full burst through on top of its rate. Memory is at most seven small counters per key. A refused
request is not counted, and Retry-After is when enough of the oldest buckets have slid out.

One Lua script checks every budget of a request and counts it: one round trip, atomic under
concurrency. A submission counts against its session only when its credential opens that session
(the request's principal, app/auth.py), so whoever merely knows a session id cannot use up the
budget of the user who holds its secret.

The client address is `request.remote_addr`. Behind N reverse proxies that append to
X-Forwarded-For, set TRUSTED_PROXY_COUNT=N: Werkzeug's ProxyFix then takes the address the
outermost trusted proxy saw. Leave it 0 when clients reach gunicorn directly, or any client could
pick its own address (and budget) by sending the header.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask import Flask, Response, request
from redis import Redis
from werkzeug.middleware.proxy_fix import ProxyFix

from app.auth import MAX_SESSION_ID_LENGTH, current_principal
from app.errors import ApiError
from mfa.clock import now_ms
from mfa.keys import PREFIX

WINDOW_MS = 60_000
BUCKETS = 6
KEY_PREFIX = PREFIX + "rl:"
# The frontend routes; creation is backend-only, authenticated by API key, and not limited here.
ADDRESS_LIMITED = frozenset(
    {"sessions.read_session", "live.stream_session", "sessions.submit_token", "sessions.cancel_session"}
)
SESSION_LIMITED = frozenset({"sessions.submit_token"})
AUTHENTICATED = frozenset({"sessions", "live", "flows"})  # blueprints whose routes take a credential
_WHICH = {1: "this client address's failed authentications", 2: "this client address", 3: "this session"}

# KEYS: auth-failure counter, address counter, session counter (NO_BUDGET where a budget does not
# apply: a key that names no counter, yet one the web's Redis ACL user may name, mfa/acl.py).
# ARGV: now (ms), window (ms), buckets, then the three limits in KEYS' order (0: off), then mode:
# 'check' checks the three budgets and, if all allow, counts the request against the last two;
# 'fail' counts a 401 against the first. Returns {0, 0} when allowed, else {1-3 (which budget),
# ms until it allows again}.
NO_BUDGET = KEY_PREFIX + "none"
_SCRIPT = """
local NO_BUDGET = 'NO_BUDGET_KEY'
local now, window, buckets = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local size = window / buckets
local current = math.floor(now / size)

local function tally(key)
  local raw = redis.call('HGETALL', key)
  local live, stale, total = {}, {}, 0
  for i = 1, #raw, 2 do
    local bucket, count = tonumber(raw[i]), tonumber(raw[i + 1])
    if bucket < current - buckets then
      stale[#stale + 1] = raw[i]
    else
      live[#live + 1] = {bucket, count}
      total = total + count
    end
  end
  if #stale > 0 then
    redis.call('HDEL', key, unpack(stale))
  end
  return total, live
end

-- When enough of the oldest buckets have left the window for one more request to fit.
local function wait(live, total, limit)
  table.sort(live, function(a, b) return a[1] < b[1] end)
  for _, entry in ipairs(live) do
    total = total - entry[2]
    if total < limit then
      return (entry[1] + buckets + 1) * size - now
    end
  end
  return size
end

local function count(key)
  redis.call('HINCRBY', key, string.format('%d', current), 1)
  redis.call('PEXPIRE', key, window + size)
end

if ARGV[7] == 'fail' then
  count(KEYS[1])
  return {0, 0}
end
for i = 1, 3 do
  local limit = tonumber(ARGV[3 + i])
  if limit > 0 and KEYS[i] ~= NO_BUDGET then
    local total, live = tally(KEYS[i])
    if total >= limit then
      return {i, math.ceil(wait(live, total, limit))}
    end
  end
end
for i = 2, 3 do
  if tonumber(ARGV[3 + i]) > 0 and KEYS[i] ~= NO_BUDGET then
    count(KEYS[i])
  end
end
return {0, 0}
""".replace("NO_BUDGET_KEY", NO_BUDGET)


def address_key(address: str) -> str:
    """The counter of one client address."""
    return f"{KEY_PREFIX}addr:{address}"


def session_counter_key(session_id: str) -> str:
    """The counter of token submissions to one session."""
    return f"{KEY_PREFIX}session:{session_id}"


def auth_failure_key(address: str) -> str:
    """The counter of 401 answers to one client address."""
    return f"{KEY_PREFIX}auth:{address}"


@dataclass
class Budgets:
    """The three budgets' limits per minute (0: off) and the script that checks and counts them."""

    redis: Redis
    auth_failures: int
    address: int
    session: int

    def __post_init__(self) -> None:
        self._script = self.redis.register_script(_SCRIPT)  # EVALSHA, loading the script on first use

    def _run(self, keys: list[str], now: int, mode: str) -> tuple[int, int]:
        limits = [self.auth_failures, self.address, self.session]
        which, wait_ms = self._script(keys=keys, args=[now, WINDOW_MS, BUCKETS, *limits, mode])
        return int(which), int(wait_ms)

    def check(self, auth_key: str, address_key: str, session_key: str, now: int) -> tuple[int, int]:
        """(0, 0) when every budget allows the request (then counted), else (which, ms to wait)."""
        return self._run([auth_key, address_key, session_key], now, "check")

    def fail(self, auth_key: str, now: int) -> None:
        """Count a 401 answer against its address."""
        self._run([auth_key, NO_BUDGET, NO_BUDGET], now, "fail")

    @property
    def on(self) -> bool:
        """True when any budget is limited."""
        return self.auth_failures > 0 or self.address > 0 or self.session > 0


def register_rate_limits(app: Flask) -> None:
    """Limit the session routes per client address and per session, and throttle repeated 401s."""
    svc = app.extensions["mfa"]
    settings = svc.settings
    if settings.trusted_proxy_count > 0:
        # Only the last N X-Forwarded-For entries come from our proxies; earlier ones are the client's say.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_count)  # type: ignore[method-assign]
    budgets = Budgets(
        svc.redis,
        settings.auth_failure_limit_per_minute,
        settings.rate_limit_per_minute,
        settings.session_rate_limit_per_minute,
    )
    if not budgets.on:
        return

    @app.before_request
    def _limit() -> None:
        if request.method == "OPTIONS" or request.blueprint not in AUTHENTICATED:
            return
        address = request.remote_addr or "unknown"
        keys = [auth_failure_key(address) if budgets.auth_failures > 0 else NO_BUDGET, NO_BUDGET, NO_BUDGET]
        if request.endpoint in ADDRESS_LIMITED:
            principal = current_principal()
            session_id = principal.session_id or ""
            counted = (
                request.endpoint in SESSION_LIMITED
                and principal.opens_session
                and 0 < len(session_id) <= MAX_SESSION_ID_LENGTH
            )
            keys[1:] = [address_key(address), session_counter_key(session_id) if counted else NO_BUDGET]
        if all(key == NO_BUDGET for key in keys):
            return
        exceeded, wait_ms = budgets.check(keys[0], keys[1], keys[2], now_ms())
        if exceeded:
            raise ApiError(
                429,
                "rate_limited",
                "Too many requests",
                f"The request limit for {_WHICH[exceeded]} is used up; retry after the Retry-After seconds.",
                headers={"Retry-After": str(max(1, math.ceil(wait_ms / 1000)))},
            )

    @app.after_request
    def _count_auth_failure(resp: Response) -> Response:
        if resp.status_code == 401 and budgets.auth_failures > 0 and request.blueprint in AUTHENTICATED:
            budgets.fail(auth_failure_key(request.remote_addr or "unknown"), now_ms())
        return resp
