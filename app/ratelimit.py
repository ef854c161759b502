"""Rate limits on the session routes, counted in Redis so they hold across processes and hosts.

Two budgets, each a fixed window of one minute that opens with its first request (so a burst cannot
straddle a clock-aligned boundary and pass twice the limit):
  mfa:rl:addr:{client address}   reads, token submissions and cancels from one client address
  mfa:rl:session:{session id}    token submissions to one session

Both are checked and counted by one Lua script: one round trip, atomic under concurrency (INCR, then
PEXPIRE on the window's first hit). A request over a budget answers 429 `rate_limited` with
Retry-After (the seconds until that window ends). A submission counts against its session only when
its credential opens that session (the request's principal, app/auth.py, says so), so whoever merely
knows a session id cannot use up the budget of the user who holds its secret; unauthenticated
attempts are bounded by the address budget.

The client address is `request.remote_addr`. Behind N reverse proxies that append to
X-Forwarded-For, set TRUSTED_PROXY_COUNT=N: Werkzeug's ProxyFix then takes the address the
outermost trusted proxy saw. Leave it 0 when clients reach gunicorn directly, or any client could
pick its own address (and budget) by sending the header.
"""

from __future__ import annotations

import math

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from app.auth import MAX_SESSION_ID_LENGTH, current_principal
from app.errors import ApiError
from mfa.keys import PREFIX

WINDOW_MS = 60_000
KEY_PREFIX = PREFIX + "rl:"
# The frontend routes; creation is backend-only, authenticated by API key, and not limited here.
ADDRESS_LIMITED = frozenset({"sessions.read_session", "sessions.submit_token", "sessions.cancel_session"})
SESSION_LIMITED = frozenset({"sessions.submit_token"})

# KEYS: address counter, session counter (the address counter again when the request does not count
# against a session: every key a script names must be one the web's ACL user may touch).
# ARGV: address limit, session limit (0: off), window ms, '1' when the session counter counts.
# Returns {0, 0} when allowed, else {1 (address) or 2 (session), ms until that window ends}.
_CHECK = """
local function hit(key, window)
  local n = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if n == 1 or ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = window
  end
  return n, ttl
end
local window = tonumber(ARGV[3])
local address_limit = tonumber(ARGV[1])
if address_limit > 0 then
  local n, ttl = hit(KEYS[1], window)
  if n > address_limit then return {1, ttl} end
end
local session_limit = tonumber(ARGV[2])
if session_limit > 0 and ARGV[4] == '1' then
  local n, ttl = hit(KEYS[2], window)
  if n > session_limit then return {2, ttl} end
end
return {0, 0}
"""


def address_key(address: str) -> str:
    """The counter of one client address."""
    return f"{KEY_PREFIX}addr:{address}"


def session_counter_key(session_id: str) -> str:
    """The counter of token submissions to one session."""
    return f"{KEY_PREFIX}session:{session_id}"


def register_rate_limits(app: Flask) -> None:
    """Limit the session routes per client address and token submissions per session."""
    svc = app.extensions["mfa"]
    settings = svc.settings
    if settings.trusted_proxy_count > 0:
        # Only the last N X-Forwarded-For entries come from our proxies; earlier ones are the client's say.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_count)  # type: ignore[method-assign]
    if settings.rate_limit_per_minute <= 0 and settings.session_rate_limit_per_minute <= 0:
        return
    script = svc.redis.register_script(_CHECK)  # EVALSHA, loading the script on first use

    @app.before_request
    def _limit() -> None:
        if request.method == "OPTIONS" or request.endpoint not in ADDRESS_LIMITED:
            return
        principal = current_principal()
        session_id = principal.session_id or ""
        counted = (
            request.endpoint in SESSION_LIMITED
            and principal.opens_session
            and 0 < len(session_id) <= MAX_SESSION_ID_LENGTH
        )
        address = address_key(request.remote_addr or "unknown")
        keys = [address, session_counter_key(session_id) if counted else address]
        args = [
            settings.rate_limit_per_minute,
            settings.session_rate_limit_per_minute,
            WINDOW_MS,
            "1" if counted else "0",
        ]
        exceeded, wait_ms = script(keys=keys, args=args)
        if exceeded:
            which = "this client address" if exceeded == 1 else "this session"
            raise ApiError(
                429,
                "rate_limited",
                "Too many requests",
                f"The request limit for {which} is used up; retry after the Retry-After seconds.",
                headers={"Retry-After": str(max(1, math.ceil(int(wait_ms) / 1000)))},
            )
