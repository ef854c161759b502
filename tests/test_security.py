"""Security properties over real HTTP: secrets, API-key rotation, CORS, security headers, body limits,
error answers, and that no secret reaches a log line or Redis.

The shared stack (tests/conftest.py) serves the secret tests; CORS, 429 and 503 need settings of their
own, so this module also starts a gunicorn with CORS origins and a tight per-session limit, and one
whose Redis is down.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from app.config import ConfigError, Settings
from app.cors import origin_patterns
from devstack.processes import Proc, free_port, start_redis, start_web, wait_for
from tests.support import API_KEY, BELVO_SECRET_PASSWORD, CREDENTIALS_KEY, SECOND_API_KEY, Api

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


# --- stacks of this module -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("security")


@pytest.fixture(scope="module")
def sec_redis(sec_dir: Path) -> Iterator[Proc]:
    proc = start_redis(sec_dir / "redis", sec_dir / "logs", name="sec-redis")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def cors_web(sec_redis: Proc, sec_dir: Path) -> Iterator[Proc]:
    """CORS for two origins; one token submission a minute per session, so a second one answers 429."""
    env = {
        "REDIS_URL": sec_redis.url,
        "API_KEYS": API_KEY,
        "CORS_ORIGINS": f"{ORIGIN}, {LOCAL_ORIGIN}",
        "RATE_LIMIT_PER_MINUTE": "100000",
        "SESSION_RATE_LIMIT_PER_MINUTE": "1",
    }
    proc = start_web(env, sec_dir / "logs", workers=1, name="sec-web")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def storeless_web(sec_dir: Path) -> Iterator[Proc]:
    """A web process whose Redis is down (nothing listens on its port)."""
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "API_KEYS": API_KEY}
    proc = start_web(env, sec_dir / "logs", workers=1, name="sec-web-storeless")
    yield proc
    proc.stop()


@pytest.fixture
def cors_api(cors_web: Proc) -> Api:
    return Api(cors_web.url)


def _pause() -> dict:
    return {"session": uuid.uuid4().hex, "link": str(uuid.uuid4()), "expiry": 600}


def _preflight(url: str, origin: str, method: str, headers: str = REQUEST_HEADERS) -> requests.Response:
    return requests.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
        timeout=10,
    )


def _listed(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


def _assert_problem(r: requests.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["code"] == code and body["title"] and body["detail"]
    assert not TRACE.search(r.text), r.text  # no stack trace, no source path


def _assert_security_headers(r: requests.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (r.request.method, r.url, r.status_code, name)


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
    dump = b"\n".join(_redis_values(redis))
    for s in sessions:
        assert s["client_secret"].encode() not in dump
        assert hashlib.sha256(s["client_secret"].encode()).hexdigest().encode() in dump
        assert api.get(s["id"], credential=s["client_secret"]).status_code == 200


def test_every_listed_api_key_is_accepted_during_a_rotation(api, sandbox):
    old = Api(api.url, API_KEY)
    new = Api(api.url, SECOND_API_KEY)
    s = old.created(sandbox.pause())
    t = new.created(sandbox.pause())
    for client in (old, new):
        assert client.get(s["id"]).status_code == 200 and client.get(t["id"]).status_code == 200
    retired = Api(api.url, "test-api-key-retired-0000000000")
    _assert_problem(retired.create(sandbox.pause()), 401, "invalid_credentials")
    _assert_problem(retired.get(s["id"]), 404, "session_not_found")


# --- CORS ------------------------------------------------------------------------------------------


def _frontend_routes(api: Api) -> list[tuple[str, str]]:
    s = api.created(_pause())
    base = f"{api.url}/v1/sessions/{s['id']}"
    return [("GET", base), ("POST", f"{base}/token"), ("POST", f"{base}/cancel")]


@pytest.mark.parametrize("origin", [ORIGIN, LOCAL_ORIGIN])
def test_cors_preflight_allows_the_listed_origins_on_the_frontend_routes(cors_api, origin):
    for method, url in _frontend_routes(cors_api):
        r = _preflight(url, origin, method)
        assert r.status_code == 200, (method, url, r.text)
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
    for method, url in _frontend_routes(cors_api):
        r = _preflight(url, origin, method)
        assert "Access-Control-Allow-Origin" not in r.headers, (origin, url)
        assert "Access-Control-Allow-Headers" not in r.headers
        _assert_security_headers(r)
    s = cors_api.created(_pause())
    r = cors_api.request("GET", f"/v1/sessions/{s['id']}", headers={"Origin": origin})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_cors_allows_only_the_listed_request_headers(cors_api):
    method, url = _frontend_routes(cors_api)[1]
    r = _preflight(url, ORIGIN, method, "Content-Type, X-Evil, Cookie")
    assert _listed(r.headers.get("Access-Control-Allow-Headers")) == {"content-type"}


def test_no_cors_on_backend_routes_or_without_an_origin(cors_api):
    r = _preflight(f"{cors_api.url}/v1/sessions", ORIGIN, "POST")
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


def test_security_headers_on_every_answer_including_errors(cors_api, storeless_web):
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
        503: Api(storeless_web.url).get(sid),
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
    preflight = _preflight(f"{cors_api.url}/v1/sessions/{sid}/token", ORIGIN, "POST")
    assert preflight.status_code == 200
    _assert_security_headers(preflight)


def test_the_storeless_service_answers_503_on_every_session_route(storeless_web):
    api = Api(storeless_web.url)
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


# --- secrets hygiene -------------------------------------------------------------------------------


def _redis_values(client: Redis) -> list[bytes]:
    """Every key name and value of every type; zlib-compressed values (RQ's job data) are inflated too."""
    found: list[bytes] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            values = [client.get(key)]
        elif kind == b"hash":
            values = [item for pair in client.hgetall(key).items() for item in pair]
        elif kind == b"list":
            values = client.lrange(key, 0, -1)
        elif kind == b"set":
            values = list(client.smembers(key))
        elif kind == b"zset":
            values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            values = [item for _, fields in client.xrange(key) for pair in fields.items() for item in pair]
        elif kind == b"none":  # expired since the scan saw it
            continue
        else:
            raise AssertionError(f"{key!r} has a type this test does not read: {kind!r}")
        found += [key, *_inflated(values)]
    return found


def _inflated(values: list[bytes | None]) -> list[bytes]:
    """The values, and beside each zlib-compressed one (RQ's job data, exc_info) its inflated bytes."""
    out = []
    for value in values:
        if value is None:
            continue
        out.append(value)
        try:
            out.append(zlib.decompress(value))
        except zlib.error:
            pass
    return out


def _rq_jobs(client: Redis) -> list[Job]:
    """The RQ jobs in Redis now, their data unpickled by RQ itself."""
    jobs = []
    for key in client.scan_iter("rq:job:*"):
        job_id = key.decode().removeprefix("rq:job:")
        if ":" in job_id:  # rq:job:{id}:dependents and the like
            continue
        try:
            jobs.append(Job.fetch(job_id, connection=client))
        except NoSuchJobError:  # finished and deleted since the scan
            continue
    return jobs


def _rq_idle(client: Redis) -> bool:
    queue = Queue(Settings().resume_queue, connection=client)
    return (
        queue.count == 0
        and StartedJobRegistry(queue=queue).count == 0
        and ScheduledJobRegistry(queue=queue).count == 0
    )


def test_no_secret_reaches_a_log_line_or_redis(api, sandbox, redis, web, worker):
    """Drive every flow with distinctive secrets, then search the web and worker logs and all of Redis."""
    bank_password = "numeric_code"  # the sandbox's MFA credentials: the password is fixed
    secrets: set[str] = {API_KEY, SECOND_API_KEY, BELVO_SECRET_PASSWORD, CREDENTIALS_KEY, bank_password}
    tokens = {"111111", "999999", "738291"}  # the sandbox decides by these; 738291 is rejected
    job_args: list[tuple] = []

    def start(**pause: object) -> dict:
        s = api.created(sandbox.pause(**pause))
        secrets.add(s["client_secret"])
        assert api.get(s["id"], credential=s["client_secret"]).status_code == 200
        return s

    def submit(s: dict, token: str | None, **kw: object) -> None:
        r = api.submit(s["id"], token, credential=s["client_secret"], **kw)
        assert r.status_code == 202, r.text
        # The job is enqueued with the status change, so it is in Redis now (unless already done):
        # its arguments are ids, and its pickled data holds no token.
        for job in _rq_jobs(redis):
            job_args.append(job.args)
            data = b"".join(_inflated(redis.hvals(job.key)))
            assert not any(t.encode() in data for t in tokens), job.id

    s = start()  # success, with an Idempotency-Key and its replay
    key = {"Idempotency-Key": str(uuid.uuid4())}
    submit(s, "111111", headers=key)
    assert api.submit(s["id"], "111111", credential=s["client_secret"], headers=key).status_code == 202
    assert api.wait(s["id"])["status"] == "succeeded"

    s = start()  # chained MFA: another token for step 2
    submit(s, "999999")
    api.wait(s["id"], {"awaiting_token"}, step=2)
    submit(s, "111111")
    assert api.wait(s["id"])["status"] == "succeeded"

    s = start()  # a token Belvo rejects
    submit(s, "738291")
    assert api.wait(s["id"])["outcome"]["code"] == "invalid_token"

    s = start()
    assert api.cancel(s["id"], credential=s["client_secret"]).status_code == 200

    s = start(token_type="device")  # confirmed elsewhere: no token
    submit(s, None)
    assert api.wait(s["id"])["status"] == "succeeded"

    # A link registered by the service: the bank password travels sealed, then the MFA step as above.
    link = {"institution": "heimdall_mx_retail", "username": "mfa_numeric", "password": bank_password}
    r = api.request("POST", "/v1/links", json=link)
    assert r.status_code == 202, r.text
    s = r.json()
    secrets.add(s["client_secret"])
    api.wait(s["id"], {"awaiting_token"})
    submit(s, "111111")
    assert api.wait(s["id"])["status"] == "succeeded"

    for fault in ({"mode": "status", "status": 500}, {"mode": "hang", "delay_seconds": 3}):
        sandbox.fault(**fault)  # a 500, then a timeout: each retried once
        s = start()
        submit(s, "111111")
        assert api.wait(s["id"])["status"] == "succeeded"
        assert [c["fault"] is not None for c in sandbox.calls(method="PATCH")[-2:]] == [True, False]

    assert job_args and all(
        len(args) == 3 and str(args[0]).startswith("mfa_") and all(isinstance(n, int) for n in args[1:])
        for args in job_args
    ), job_args  # (session id, step, attempt): ids only
    # Every job has returned (so has its logging), and the web has logged a request made after all others.
    wait_for(lambda: _rq_idle(redis), 30, "the resume queue to drain")
    marker = uuid.uuid4().hex
    api.request("GET", "/healthz", credential=None, headers={"X-Request-ID": marker})
    wait_for(lambda: marker in web.log_text(), 10, "the web access log to catch up")

    lines = web.log_text().splitlines() + worker.log_text().splitlines()
    dump = _redis_values(redis)
    token_pattern = re.compile(
        rb"(?<![0-9A-Za-z])(?:" + b"|".join(t.encode() for t in tokens) + rb")(?![0-9A-Za-z])"
    )
    for secret in secrets:
        assert not [line for line in lines if secret in line], f"a secret is logged: {secret[:6]}..."
        assert not [v for v in dump if secret.encode() in v], f"a secret is in Redis: {secret[:6]}..."
    assert not [line for line in lines if token_pattern.search(line.encode())], "an MFA token is logged"
    assert not [v for v in dump if token_pattern.search(v)], "an MFA token is in Redis"
