"""Security properties of the app: client secrets, API-key rotation, CORS, security headers, body limits
and error answers (secrets hygiene is tests/system/test_secrets.py).

CORS, 429 and 503 need settings of their own: this module builds an app with CORS origins and a tight
per-session limit, and one whose Redis is down.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

import pytest

from app.cors import origin_patterns
from devstack.processes import free_port
from mfa.errors import ConfigError
from mfa.settings import Settings
from tests.inprocess import InProcessApi, service_api
from tests.support import API_KEY, SECOND_API_KEY, redis_values

ORIGIN = "https://app.example.com"
LOCAL_ORIGIN = "http://localhost:3000"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}
REQUEST_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-ID"
TRACE = re.compile(r"Traceback|File \"[^\"]+\", line \d+|\.py\b")


# --- apps of this module ---------------------------------------------------------------------------


@pytest.fixture
def cors_api(make_api) -> InProcessApi:
    """CORS for two origins; one token submission a minute per session, so a second one answers 429."""
    return make_api(
        CORS_ORIGINS=f"{ORIGIN}, {LOCAL_ORIGIN}",
        RATE_LIMIT_PER_MINUTE="100000",
        SESSION_RATE_LIMIT_PER_MINUTE="1",
    )


@pytest.fixture
def storeless_api(service_env) -> InProcessApi:
    """An app whose Redis is down (nothing listens on its port)."""
    return service_api({**service_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})


def _pause() -> dict:
    return {"session": uuid.uuid4().hex, "link": str(uuid.uuid4()), "expiry": 600}


def _preflight(api: InProcessApi, path: str, origin: str, method: str, headers: str = REQUEST_HEADERS) -> Any:
    return api.request(
        "OPTIONS",
        path,
        credential=None,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def _listed(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


def _assert_problem(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["code"] == code and body["title"] and body["detail"]
    assert not TRACE.search(r.text), r.text  # no stack trace, no source path


def _assert_security_headers(r: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (r.status_code, name)


# --- client secrets and API keys -------------------------------------------------------------------


def test_client_secrets_are_random_and_long(api, sandbox):
    a = api.created(sandbox.pause())["client_secret"]
    b = api.created(sandbox.pause())["client_secret"]
    assert a != b
    for secret in (a, b):
        # 43 url-safe base64 characters carry 258 bits; we require at least 128.
        assert re.fullmatch(r"mcs_[A-Za-z0-9_-]{43,}", secret), secret
        assert len(secret.removeprefix("mcs_")) * 6 >= 128


def test_client_secrets_are_stored_only_as_their_hash(api, sandbox, redis):
    sessions = [api.created(sandbox.pause()) for _ in range(2)]
    dump = b"\n".join(redis_values(redis))
    for s in sessions:
        assert s["client_secret"].encode() not in dump
        assert hashlib.sha256(s["client_secret"].encode()).hexdigest().encode() in dump
        assert api.get(s["id"], credential=s["client_secret"]).status_code == 200


def test_every_listed_api_key_is_accepted_during_a_rotation(api, sandbox):
    old = api.as_key(API_KEY)
    new = api.as_key(SECOND_API_KEY)
    s = old.created(sandbox.pause())
    t = new.created(sandbox.pause())
    for client in (old, new):
        assert client.get(s["id"]).status_code == 200 and client.get(t["id"]).status_code == 200
    retired = api.as_key("test-api-key-retired-0000000000")
    _assert_problem(retired.create(sandbox.pause()), 401, "invalid_credentials")
    _assert_problem(retired.get(s["id"]), 404, "session_not_found")


# --- CORS ------------------------------------------------------------------------------------------


def _frontend_routes(api: InProcessApi) -> list[tuple[str, str]]:
    s = api.created(_pause())
    base = f"/v1/sessions/{s['id']}"
    return [("GET", base), ("POST", f"{base}/token"), ("POST", f"{base}/cancel")]


@pytest.mark.parametrize("origin", [ORIGIN, LOCAL_ORIGIN])
def test_cors_preflight_allows_the_listed_origins_on_the_frontend_routes(cors_api, origin):
    for method, path in _frontend_routes(cors_api):
        r = _preflight(cors_api, path, origin, method)
        assert r.status_code == 200, (method, path, r.text)
        assert r.headers["Access-Control-Allow-Origin"] == origin
        assert method.lower() in _listed(r.headers["Access-Control-Allow-Methods"])
        assert _listed(r.headers["Access-Control-Allow-Headers"]) == _listed(REQUEST_HEADERS)
        assert int(r.headers["Access-Control-Max-Age"]) > 0
        assert "Access-Control-Allow-Credentials" not in r.headers
        assert "origin" in _listed(r.headers.get("Vary"))
        _assert_security_headers(r)


def test_cors_answers_expose_the_headers_a_frontend_reads(cors_api):
    s = cors_api.created(_pause())
    origin = {"Origin": ORIGIN}
    answers = [
        cors_api.request("GET", f"/v1/sessions/{s['id']}", s["client_secret"], headers=origin),
        cors_api.request(
            "POST", f"/v1/sessions/{s['id']}/token", s["client_secret"], json={"token": "1"}, headers=origin
        ),
        # Errors too: the frontend must be able to read a 429's Retry-After and any request id.
        cors_api.request(
            "POST", f"/v1/sessions/{s['id']}/token", s["client_secret"], json={"token": "1"}, headers=origin
        ),
    ]
    assert [r.status_code for r in answers] == [200, 202, 429]
    for r in answers:
        assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert _listed(r.headers["Access-Control-Expose-Headers"]) == {
            "x-request-id",
            "retry-after",
            "idempotent-replayed",
        }
        assert "Access-Control-Allow-Credentials" not in r.headers


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://app.example.com",  # another scheme is another origin
        "https://app.example.com:8443",  # and so is another port
        "https://app.example.com.evil.example",
        "https://evilapp.example.com",
        "null",
    ],
)
def test_cors_gives_other_origins_nothing(cors_api, origin):
    for method, path in _frontend_routes(cors_api):
        r = _preflight(cors_api, path, origin, method)
        assert "Access-Control-Allow-Origin" not in r.headers, (origin, path)
        assert "Access-Control-Allow-Headers" not in r.headers
        _assert_security_headers(r)
    s = cors_api.created(_pause())
    r = cors_api.request("GET", f"/v1/sessions/{s['id']}", headers={"Origin": origin})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_cors_allows_only_the_listed_request_headers(cors_api):
    method, path = _frontend_routes(cors_api)[1]
    r = _preflight(cors_api, path, ORIGIN, method, "Content-Type, X-Evil, Cookie")
    assert _listed(r.headers.get("Access-Control-Allow-Headers")) == {"content-type"}


def test_no_cors_on_backend_routes_or_without_an_origin(cors_api):
    r = _preflight(cors_api, "/v1/sessions", ORIGIN, "POST")
    assert "Access-Control-Allow-Origin" not in r.headers
    r = cors_api.request(
        "POST", "/v1/sessions", json={"token_required": _pause()}, headers={"Origin": ORIGIN}
    )
    assert r.status_code == 201 and "Access-Control-Allow-Origin" not in r.headers
    r = cors_api.get(r.json()["id"])
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.parametrize(
    "origins",
    [
        ("https://*.example.com",),
        ("https://app.example.com/",),
        ("app.example.com",),
        ("https://app.example.(com|org)",),
        (ORIGIN, "https://app.example.com/callback"),
    ],
)
def test_cors_origins_must_be_exact_origins(origins):
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        origin_patterns(origins)


def test_cors_wildcard_only_when_given_and_origins_match_whole():
    assert origin_patterns(("*",)) == "*"
    [pattern] = origin_patterns(("https://app.example.com",))
    assert pattern.match("https://app.example.com")
    assert not pattern.match("https://app.example.com.evil.example")
    assert not pattern.match("https://appxexample.com")  # the dot is literal
    assert Settings.from_env({"CORS_ORIGINS": ""}).cors_origins == ()


# --- security headers, error answers, body limits --------------------------------------------------


def test_security_headers_on_every_answer_including_errors(cors_api, storeless_api):
    s = cors_api.created(_pause())
    sid, secret = s["id"], s["client_secret"]
    big = json.dumps({"token": "1", "pad": "x" * 70_000})
    answers = {
        200: cors_api.get(sid),
        201: cors_api.create(_pause()),
        202: cors_api.submit(sid, "1", credential=secret),
        404: cors_api.request("GET", "/v1/nowhere"),
        405: cors_api.request("DELETE", "/v1/sessions"),
        413: cors_api.request("POST", "/v1/sessions", data=big),
        422: cors_api.request("POST", "/v1/sessions", json={"token_required": []}),
        429: cors_api.submit(sid, "1", credential=secret),
        503: storeless_api.get(sid),
        401: cors_api.get(sid, credential=None),
    }
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        422: "validation_error",
        429: "rate_limited",
        503: "store_unavailable",
        401: "unauthorized",
    }
    for status, r in answers.items():
        assert r.status_code == status, (status, r.text)
        _assert_security_headers(r)
        if status in codes:
            _assert_problem(r, status, codes[status])
    assert answers[503].headers["Retry-After"] and answers[429].headers["Retry-After"]
    preflight = _preflight(cors_api, f"/v1/sessions/{sid}/token", ORIGIN, "POST")
    assert preflight.status_code == 200
    _assert_security_headers(preflight)


def test_the_storeless_service_answers_503_on_every_session_route(storeless_api):
    api = storeless_api
    sid = f"mfa_{'0' * 32}"
    for r in (api.get(sid), api.submit(sid), api.cancel(sid), api.create(_pause())):
        _assert_problem(r, 503, "store_unavailable")
    _assert_problem(api.request("GET", "/readyz", credential=None), 503, "store_unavailable")


@pytest.mark.parametrize("route", ["create", "token"])
def test_bodies_over_64_kib_are_refused_with_413(api, sandbox, route):
    s = api.created(sandbox.pause())
    path = "/v1/sessions" if route == "create" else f"/v1/sessions/{s['id']}/token"

    def body(size: int) -> bytes:
        shell = b'{"token": "1", "pad": ""}'
        return shell[:-2] + b"x" * (size - len(shell)) + shell[-2:]

    at_limit = api.request("POST", path, data=body(64 * 1024), headers={"Content-Type": "application/json"})
    assert at_limit.status_code == 422, at_limit.text  # read and validated: 64 KiB is allowed
    over = api.request("POST", path, data=body(64 * 1024 + 1), headers={"Content-Type": "application/json"})
    _assert_problem(over, 413, "payload_too_large")
    assert api.get(s["id"]).json()["status"] == "awaiting_token"
