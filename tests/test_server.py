"""The web worker's body deadline (app/server.py), as WSGI middleware in this process; on real gunicorn with
real slow sockets: tests/system/test_slow_clients.py."""

from __future__ import annotations

import io
import json
from typing import Any

import gevent
import pytest

from app.server import BodyDeadline, body_timeout_seconds
from mfa.errors import ConfigError


class TrickledBody:
    """A body whose bytes come `delay` seconds apart, each a cooperative wait (a socket, under gevent)."""

    def __init__(self, data: bytes, delay: float) -> None:
        self.data, self.delay = data, delay

    def read(self, size: int = -1) -> bytes:
        out = b""
        while self.data and (size < 0 or len(out) < size):
            gevent.sleep(self.delay)
            out, self.data = out + self.data[:1], self.data[1:]
        return out


def _call(app: BodyDeadline, environ: dict[str, Any]) -> tuple[str, bytes]:
    answer: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"] = status

    body = b"".join(app(environ, start_response))
    return answer["status"], body


def _seen_by_app(environ: dict[str, Any], read: bool = True) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(env, body=env["wsgi.input"].read() if read else None)
        start_response("200 OK", [])
        return [b"ok"]

    status, _ = _call(BodyDeadline(app, seconds=5, max_bytes=16), environ)
    assert status == "200 OK"
    return seen


def test_a_body_that_does_not_arrive_in_time_is_answered_408_without_the_app():
    called = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        called.append(environ)
        return []

    environ = {"CONTENT_LENGTH": "8", "wsgi.input": TrickledBody(b"12345678", delay=0.05)}
    status, body = _call(BodyDeadline(app, seconds=0.2, max_bytes=1024), environ)
    assert status == "408 Request Timeout" and not called
    assert json.loads(body)["code"] == "request_timeout"


def test_one_deadline_covers_the_whole_body_however_it_trickles():
    # Each byte comes well within the deadline; all of them do not.
    environ = {"CONTENT_LENGTH": "20", "wsgi.input": TrickledBody(b"x" * 20, delay=0.03)}
    status, _ = _call(BodyDeadline(lambda e, s: [], seconds=0.3, max_bytes=1024), environ)
    assert status == "408 Request Timeout"


def test_the_app_gets_the_whole_body_with_its_length():
    seen = _seen_by_app({"CONTENT_LENGTH": "5", "wsgi.input": io.BytesIO(b"hello")})
    assert seen["body"] == b"hello" and seen["CONTENT_LENGTH"] == "5"


def test_a_chunked_body_reaches_the_app_decoded_and_one_past_the_cap_keeps_its_excess_byte():
    seen = _seen_by_app({"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(b"short")})
    assert seen["body"] == b"short" and seen["CONTENT_LENGTH"] == "5"
    assert "HTTP_TRANSFER_ENCODING" not in seen
    # Past the cap: the app sees a length over its limit (Flask answers 413) instead of a cut body.
    long = _seen_by_app({"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(b"y" * 100)})
    assert long["CONTENT_LENGTH"] == "17" and long["body"] == b"y" * 17


def test_requests_without_a_body_or_over_the_cap_pass_through_unread():
    for environ in ({}, {"CONTENT_LENGTH": "0"}, {"CONTENT_LENGTH": "1000"}):
        stream = TrickledBody(b"never read", delay=10)
        seen = _seen_by_app({**environ, "wsgi.input": stream}, read=False)
        assert seen["wsgi.input"] is stream


@pytest.mark.parametrize(("raw", "seconds"), [("", 10.0), ("2.5", 2.5)])
def test_the_body_deadline_setting(raw, seconds):
    assert body_timeout_seconds({"WEB_BODY_TIMEOUT_SECONDS": raw}) == seconds


@pytest.mark.parametrize("raw", ["soon", "0", "-1", "inf", "nan"])
def test_a_malformed_body_deadline_stops_start_up(raw):
    with pytest.raises(ConfigError, match="WEB_BODY_TIMEOUT_SECONDS"):
        body_timeout_seconds({"WEB_BODY_TIMEOUT_SECONDS": raw})
