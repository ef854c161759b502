"""Logs: one JSON object per line, carrying the API request's id into its job, its retries and its Belvo
call, with the session, step, attempt and Belvo's own request id on the worker's lines."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from mfa import logs
from mfa.logs import JsonFormatter, TextFormatter
from tests.support import first


class Captured:
    """The lines the service logs during a test, as its handler writes them (JSON, one per line)."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())

    def lines(self) -> list[dict]:
        raw = self.stream.getvalue().splitlines()
        return [json.loads(line) for line in raw]  # every line parses on its own

    def of(self, logger: str) -> list[dict]:
        return [line for line in self.lines() if line["logger"] == logger]


@pytest.fixture
def captured(api) -> Iterator[Captured]:
    """Attached after the app's own set-up (which replaces the root's handlers), removed after the test."""
    cap = Captured()
    root = logging.getLogger()
    root.addHandler(cap.handler)
    yield cap
    root.removeHandler(cap.handler)


def _submitted(api, sandbox, token="111111", request_id="req-abc.123", **pause):
    body = sandbox.pause(**pause)
    s = api.created(body)
    headers = {"X-Request-ID": request_id}
    r = api.submit(s["id"], token, credential=s["client_secret"], headers=headers)
    assert r.status_code == 202 and r.headers["X-Request-ID"] == request_id, r.text
    return s, first(body)


def test_the_request_id_reaches_the_job_and_the_belvo_call(api, sandbox, captured):
    s, tr = _submitted(api, sandbox)
    assert api.wait(s["id"])["status"] == "succeeded"
    [call] = sandbox.calls(method="PATCH", session=tr["session"])
    assert call["request_id"] == "req-abc.123"
    worker_lines = captured.of("mfa.steps")
    assert worker_lines, captured.lines()
    for line in worker_lines:
        assert line["request_id"] == "req-abc.123"
        assert (line["session_id"], line["step"], line["attempt"]) == (s["id"], 1, 1)
        assert line["job_id"] == f"resume_session-{s['id']}-s1-a1"
    access = [line for line in captured.of("app.access") if line.get("request_id") == "req-abc.123"]
    assert len(access) == 1
    assert access[0]["route"] == "/v1/sessions/<session_id>/token" and access[0]["status"] == 202


def test_a_retry_keeps_the_request_id_of_the_submission(api, sandbox, captured):
    sandbox.fault("status", status=503, count=1)
    s, tr = _submitted(api, sandbox, request_id="req-retried")
    assert api.wait(s["id"])["status"] == "succeeded"
    calls = sandbox.calls(method="PATCH", session=tr["session"])
    assert [c["request_id"] for c in calls] == ["req-retried", "req-retried"]
    attempts = {(line["attempt"], line["request_id"]) for line in captured.of("mfa.steps")}
    assert attempts == {(1, "req-retried"), (2, "req-retried")}


def test_belvos_request_id_is_on_the_lines_after_its_answer(api, sandbox, captured):
    s, _ = _submitted(api, sandbox, "738291")  # rejected: Belvo's error body carries its request_id
    outcome = api.wait(s["id"])["outcome"]
    assert outcome["code"] == "invalid_token" and outcome["upstream_request_id"]
    answered = [line for line in captured.of("mfa.steps") if "belvo_request_id" in line]
    assert answered and {line["belvo_request_id"] for line in answered} == {outcome["upstream_request_id"]}
    assert any(line["message"].startswith("Belvo answered 400") for line in answered)


def test_a_request_id_never_outlives_its_request(api, captured):
    api.request("GET", "/healthz", credential=None, headers={"X-Request-ID": "req-gone"})
    logging.getLogger("test").info("after the request")
    [after] = [line for line in captured.lines() if line["message"] == "after the request"]
    assert "request_id" not in after


def test_an_unusable_request_id_is_replaced(api, captured):
    r = api.request("GET", "/healthz", credential=None, headers={"X-Request-ID": "bad id\twith tab"})
    given = r.headers["X-Request-ID"]
    assert given != "bad id\twith tab" and logs.REQUEST_ID.fullmatch(given)
    assert [line["request_id"] for line in captured.of("app.access")] == [given]


def test_an_exception_stays_on_its_one_line():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", ("job",), None)
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record.exc_info = sys.exc_info()
    with logs.bound(session_id="mfa_1", step=2):
        text = JsonFormatter().format(record)
    assert "\n" not in text
    line = json.loads(text)
    assert line["message"] == "failed: job" and line["level"] == "ERROR"
    assert (line["session_id"], line["step"]) == ("mfa_1", 2)
    assert "ValueError: boom" in line["exception"]


def test_the_text_format_is_one_line_with_the_context_after_it():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    with logs.bound(request_id="r-1", session_id="mfa_1"):
        text = TextFormatter().format(record)
    assert "[r-1] hello session_id=mfa_1" in text and "\n" not in text
