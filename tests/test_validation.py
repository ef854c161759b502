"""No input gets a 5xx (app/validation.py, mfa/nesting.py): bodies over the cap are refused whatever
their framing, JSON nested past the limits answers 400 or 422, tokens are printable ASCII only, and a
request id is kept only when the whole header is sane. The chunked framing of a real server is
proved on gunicorn in tests/system/test_bodies.py."""

from __future__ import annotations

import io
import json
import uuid

import pytest

from mfa.nesting import MAX_BODY_DEPTH, MAX_CHALLENGE_DEPTH
from tests.test_security import TRACE, _assert_problem

CAP = 64 * 1024
JSON = {"Content-Type": "application/json"}


def _pause(**extra: object) -> dict:
    return {"session": uuid.uuid4().hex, "link": str(uuid.uuid4()), "expiry": 600, **extra}


def _nested(depth: int) -> dict:
    """An object nesting `depth` containers, itself included."""
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def _routes(api) -> dict[str, str]:
    s = api.created(_pause())
    return {
        "create": "/v1/sessions",
        "token": f"/v1/sessions/{s['id']}/token",
        "links": "/v1/links",
        "retrievals": "/v1/retrievals",
    }


@pytest.mark.parametrize(
    "body",
    [
        "[" * 2000 + "]" * 2000,  # past Python's parser: it raises RecursionError
        "[" * 30_000 + "]" * 30_000,
        json.dumps({"token_required": _pause(token_generation_data=_nested(500))}),  # past pydantic's
        json.dumps({"token": "1", "x": _nested(MAX_BODY_DEPTH)}),  # one past our limit
    ],
    ids=["2000", "30000", "challenge-500", "limit+1"],
)
def test_json_nested_too_deep_is_400_invalid_json_on_every_route(api, capfd, body):
    for route, path in _routes(api).items():
        r = api.request("POST", path, data=body, headers=JSON)
        _assert_problem(r, 400, "invalid_json")
        assert r.json()["detail"], route
    logged = capfd.readouterr().out  # the service logs to stdout
    assert "Traceback" not in logged and '"level": "ERROR"' not in logged


def test_a_body_within_the_depth_limit_is_read(api):
    r = api.request("POST", "/v1/sessions", data=json.dumps({"x": _nested(MAX_BODY_DEPTH - 1)}), headers=JSON)
    _assert_problem(r, 422, "validation_error")  # parsed, then refused by the schema (no such field)


def test_stored_challenge_extras_have_a_depth_limit(api):
    deep = {"type": "numeric", "extra": _nested(MAX_CHALLENGE_DEPTH)}  # the challenge itself is one more
    r = api.create(_pause(token_generation_data=deep))
    _assert_problem(r, 422, "validation_error")
    assert [e["field"] for e in r.json()["errors"]] == ["token_required.token_generation_data"]
    kept = {"type": "numeric", "extra": _nested(MAX_CHALLENGE_DEPTH - 1)}
    s = api.created(_pause(token_generation_data=kept))
    assert s["challenge"]["extra"] == kept["extra"]


@pytest.mark.parametrize("route", ["create", "token"])
def test_a_chunked_body_over_the_cap_is_refused_not_cut(api, route):
    """No Content-Length, the server ending the stream (as gunicorn does for chunked bodies): a body
    that starts as valid JSON and runs past the cap is 413, never read up to the cap and accepted."""
    path = _routes(api)[route]
    head = json.dumps({"token_required": _pause()}) if route == "create" else '{"token": "111111"}'
    body = head.encode() + b" " * (CAP + 1 - len(head))
    r = api.request(
        "POST",
        path,
        input_stream=io.BytesIO(body),
        headers={**JSON, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    _assert_problem(r, 413, "payload_too_large")
    at_cap = api.request(
        "POST",
        path,
        input_stream=io.BytesIO(body[:CAP]),
        headers={**JSON, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert at_cap.status_code in (201, 202), at_cap.text  # exactly the cap is allowed


@pytest.mark.parametrize(
    "token",
    [
        "\u0661\u0662\u0663\u0664\u0665\u0666",  # Arabic-Indic digits
        "\uff11\uff12\uff13\uff14\uff15\uff16",  # fullwidth digits
        "12345\u00a0",
        "123\x7f",
        "\u0663",
        "1234\t",
        "x" * 65,
        "",
    ],
    ids=["arabic-indic", "fullwidth", "nbsp", "del", "one-arabic", "tab", "65", "empty"],
)
def test_a_token_of_anything_but_printable_ascii_is_refused_and_the_step_not_spent(api, sandbox, token):
    s = api.created(sandbox.pause())
    r = api.submit(s["id"], token, credential=s["client_secret"])
    _assert_problem(r, 422, "validation_error")
    assert token not in r.text or not token
    assert api.get(s["id"]).json()["status"] == "awaiting_token"
    assert sandbox.calls(method="PATCH") == []


def test_every_printable_ascii_token_is_accepted(api, sandbox):
    s = api.created(sandbox.pause())
    printable = "".join(chr(c) for c in range(0x20, 0x7F))[:64]
    assert api.submit(s["id"], printable, credential=s["client_secret"]).status_code == 202


@pytest.mark.parametrize("given", ["abc\n", "abc\r\nX-Injected: 1", "a" * 65, "abc def", "ok-id_1.2"])
def test_a_request_id_is_kept_only_when_the_whole_header_is_sane(api, given):
    # Through the WSGI environ: the test client would refuse a header with a line break itself.
    r = api.request("GET", "/healthz", credential=None, environ_overrides={"HTTP_X_REQUEST_ID": given})
    kept = r.headers["X-Request-ID"]
    assert (kept == given) is (given == "ok-id_1.2"), kept
    assert "\n" not in kept and not TRACE.search(r.text)
