"""Live status in-process: the stream's contract (events, resume, end, heartbeats, expiry) and the long-poll.

The app runs in this process through Flask's test client, unbuffered, with its own change feed on the real
Redis; a StreamReader thread reads each stream while the test acts on the session. Across processes and
through a Redis restart: tests/system/test_live.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from devstack.processes import wait_for
from tests.inprocess import InProcessApi
from tests.sse import Block, StreamReader
from tests.support import Sandbox


@contextmanager
def streaming(
    api: InProcessApi, session_id: str, credential: str | None = "", last_event_id: int | None = None
) -> Iterator[StreamReader]:
    resp = api.open_stream(session_id, credential, last_event_id)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    reader = StreamReader(resp.response)
    try:
        yield reader
    finally:
        if not reader.ended.is_set():
            # The reader thread is inside the stream's generator: end the stream the way a stopping
            # web worker does, rather than close a generator another thread is running.
            api.app.extensions["mfa"].feed.close()
            assert reader.ended.wait(10)
        resp.close()


def _statuses(blocks: list[Block]) -> list[tuple[int, str]]:
    return [(int(b.id or 0), b.session()["status"]) for b in blocks if b.is_event]


def test_a_stream_carries_every_change_as_get_shows_it_then_ends_at_the_final_state(api, sandbox):
    s = api.created(sandbox.pause())
    secret = s["client_secret"]
    with streaming(api, s["id"], secret) as stream:
        first = stream.next_block()
        assert first is not None and first.retry == 2000 and not first.is_event  # the reconnect hint
        opened = stream.next_event()
        assert opened is not None and opened.id == "1"
        assert opened.session() == api.get(s["id"], credential=secret).json()
        assert api.submit(s["id"], "111111", credential=secret).status_code == 202
        submitted = stream.next_event()
        assert submitted is not None and submitted.id == "2" and submitted.session()["status"] == "submitted"
        api.tick()  # the worker's job: Belvo answers 201
        final = stream.next_event()
        assert final is not None and final.id == "3"
        assert final.session() == api.get(s["id"], credential=secret).json()  # the frontend's view
        assert final.session()["status"] == "succeeded" and final.session()["outcome"]["result"] is None
        assert stream.rest() == []  # and then the stream ends


def test_an_api_key_stream_shows_what_a_backend_get_shows(api, sandbox):
    s = api.created(sandbox.pause())
    api.submit(s["id"], "111111")
    api.wait(s["id"])
    with streaming(api, s["id"]) as stream:
        event = stream.next_event()
        assert event is not None and event.session() == api.get(s["id"]).json()
        assert event.session()["outcome"]["result"]["id"]  # Belvo's body, for the backend only
        assert stream.rest() == []


def test_last_event_id_resumes_after_that_version_without_a_gap(api, sandbox):
    s = api.created(sandbox.pause())
    secret = s["client_secret"]
    api.submit(s["id"], "999999", credential=secret)  # Belvo asks for a second step
    api.wait(s["id"], {"awaiting_token"}, step=2)
    api.submit(s["id"], "111111", credential=secret)
    done = api.wait(s["id"])
    assert done["version"] == 5  # created, submitted, step 2, submitted, succeeded
    for seen in (1, 3):
        with streaming(api, s["id"], secret, last_event_id=seen) as stream:
            got = _statuses(stream.rest())
        expected = [(2, "submitted"), (3, "awaiting_token"), (4, "submitted"), (5, "succeeded")]
        assert got == expected[seen - 1 :]
    # The client has the final version: 204 tells an EventSource to stop reconnecting.
    r = api.open_stream(s["id"], secret, last_event_id=5)
    assert r.status_code == 204 and r.get_data() == b""


def test_a_last_event_id_the_log_cannot_continue_gets_the_session_as_it_is(api, sandbox):
    s = api.created(sandbox.pause())
    api.submit(s["id"], "111111")
    api.wait(s["id"])
    # Version 0 was never an event (creation, version 1, is the record itself): no log continues it.
    with streaming(api, s["id"], last_event_id=0) as stream:
        assert _statuses(stream.rest()) == [(3, "succeeded")]


def test_a_wrong_credential_is_refused_before_any_stream_opens(api, sandbox):
    s = api.created(sandbox.pause())
    other = api.created(sandbox.pause())
    for credential, status in ((other["client_secret"], 404), ("mcs_not-a-secret", 404), (None, 401)):
        r = api.open_stream(s["id"], credential)
        assert r.status_code == status
        assert r.headers["Content-Type"] == "application/problem+json"
        assert b"data:" not in r.get_data()
    assert api.open_stream("mfa_" + "0" * 32).status_code == 404
    assert api.app.extensions["mfa"].feed.watching() == 0


def test_an_idle_stream_sends_heartbeats(make_api, sandbox):
    api = make_api(STREAM_HEARTBEAT_SECONDS="0.1")
    s = api.created(sandbox.pause())
    with streaming(api, s["id"]) as stream:
        assert stream.next_event() is not None
        beats = [stream.next_block(timeout=5) for _ in range(3)]
        assert all(b is not None and b.comments == ["heartbeat"] and not b.fields for b in beats)


def test_a_stream_past_its_time_ends_with_a_retry_hint(make_api, sandbox):
    api = make_api(STREAM_MAX_SECONDS="1", STREAM_HEARTBEAT_SECONDS="5")
    s = api.created(sandbox.pause())
    with streaming(api, s["id"]) as stream:
        assert stream.next_event() is not None
        rest = stream.rest(timeout=5)
        assert [b.retry for b in rest] == [2000]


def test_closing_the_feed_ends_every_stream_with_a_retry_hint(api, sandbox):
    sessions = [api.created(sandbox.pause()) for _ in range(3)]
    with streaming(api, sessions[0]["id"]) as a, streaming(api, sessions[1]["id"]) as b:
        assert a.next_event() is not None and b.next_event() is not None
        api.app.extensions["mfa"].feed.close()  # what the gunicorn worker does when it stops
        assert [x.retry for x in a.rest()] == [2000] and [x.retry for x in b.rest()] == [2000]
    # After close(), a new stream sends the session and ends with the hint at once.
    with streaming(api, sessions[2]["id"]) as c:
        assert _statuses(c.rest()) == [(1, "awaiting_token")]


def test_a_stream_shows_the_expiry_at_expires_at_without_the_sweeper(api, sandbox, redis):
    s = api.created(sandbox.pause(expiry=1))
    with streaming(api, s["id"]) as stream:
        assert stream.next_event() is not None
        expired = stream.next_event(timeout=5)
        assert expired is not None and expired.session()["status"] == "expired"
        assert stream.rest() == []
    assert redis.hget(f"mfa:session:{s['id']}", "status") == b"expired"  # recorded, not only shown


def test_streams_on_several_sessions_share_one_subscription(api, sandbox, redis):
    sessions = [api.created(sandbox.pause()) for _ in range(5)]
    readers, responses = [], []
    for s in sessions:
        resp = api.open_stream(s["id"])
        responses.append(resp)
        readers.append(StreamReader(resp.response))
    try:
        for reader in readers:
            assert reader.next_event() is not None
        # One subscriber for five streams (an earlier test's feed may still be hanging up).
        wait_for(lambda: redis.pubsub_numsub("mfa:changed") == [(b"mfa:changed", 1)], 5, "one subscriber")
        api.submit(sessions[2]["id"], "111111")
        changed = readers[2].next_event()
        assert changed is not None and changed.session()["status"] == "submitted"
        for i in (0, 1, 3, 4):
            with pytest.raises(AssertionError, match="no block"):
                readers[i].next_block(timeout=0.3)  # the others heard nothing
    finally:
        api.app.extensions["mfa"].feed.close()
        for reader, resp in zip(readers, responses, strict=True):
            assert reader.ended.wait(10)
            resp.close()


def test_the_session_object_carries_its_version(api, sandbox):
    s = api.created(sandbox.pause())
    assert s["version"] == 1
    r = api.submit(s["id"], "111111", credential=s["client_secret"])
    assert r.json()["version"] == 2
    assert api.get(s["id"]).json()["version"] == 2


# --- the long-poll ---------------------------------------------------------------------------------


def _later(seconds: float, action) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)  # the stimulus comes while the long-poll waits; nothing here awaits it
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_long_poll_answers_as_soon_as_the_session_changes(api, sandbox):
    s = api.created(sandbox.pause())
    secret = s["client_secret"]
    submitter = _later(0.3, lambda: api.submit(s["id"], "111111", credential=secret))
    started = time.monotonic()
    r = api.request("GET", f"/v1/sessions/{s['id']}", secret, params={"wait": 20, "after": 1})
    took = time.monotonic() - started
    submitter.join()
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["status"] == "submitted"
    assert took < 10, f"answered after {took:.1f}s, not on the change"


def test_a_long_poll_without_after_waits_for_the_next_change(api, sandbox):
    s = api.created(sandbox.pause())
    submitter = _later(0.3, lambda: api.submit(s["id"], "111111"))
    r = api.request("GET", f"/v1/sessions/{s['id']}", params={"wait": 20})
    submitter.join()
    assert r.json()["version"] == 2


def test_a_long_poll_answers_at_its_timeout_with_the_session_as_it_is(api, sandbox):
    s = api.created(sandbox.pause())
    started = time.monotonic()
    r = api.request("GET", f"/v1/sessions/{s['id']}", params={"wait": 1, "after": 1})
    assert time.monotonic() - started >= 1
    assert r.status_code == 200 and r.json() == api.get(s["id"]).json()


@pytest.mark.parametrize("after", [0, 7])
def test_a_long_poll_answers_at_once_when_the_session_is_not_at_after(api, sandbox, after):
    s = api.created(sandbox.pause())
    started = time.monotonic()
    r = api.request("GET", f"/v1/sessions/{s['id']}", params={"wait": 20, "after": after})
    assert r.json()["version"] == 1 and time.monotonic() - started < 10


def test_a_long_poll_on_a_final_session_answers_at_once(api, sandbox):
    s = api.created(sandbox.pause())
    api.cancel(s["id"])
    started = time.monotonic()
    r = api.request("GET", f"/v1/sessions/{s['id']}", params={"wait": 20, "after": 2})
    assert r.json()["status"] == "cancelled" and time.monotonic() - started < 10


def test_a_long_poll_answers_at_expiry(api, sandbox):
    s = api.created(sandbox.pause(expiry=1))
    r = api.request("GET", f"/v1/sessions/{s['id']}", params={"wait": 20})
    assert r.json()["status"] == "expired"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"wait": 26}, "wait"),
        ({"wait": -1}, "wait"),
        ({"wait": "soon"}, "wait"),
        ({"wait": 1, "after": -1}, "after"),
    ],
)
def test_a_long_poll_with_bad_parameters_is_refused(api: InProcessApi, sandbox: Sandbox, query, field):
    s = api.created(sandbox.pause())
    r = api.request("GET", f"/v1/sessions/{s['id']}", params=query)
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == [field]


# --- CORS -------------------------------------------------------------------------------------------


def test_a_browser_may_follow_a_session_from_an_allowed_origin(make_api, sandbox):
    api = make_api(CORS_ORIGINS="https://shop.example")
    s = api.created(sandbox.pause())
    api.cancel(s["id"])  # a final session: the stream answers and ends
    preflight = api.request(
        "OPTIONS",
        f"/v1/sessions/{s['id']}/stream",
        None,
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, last-event-id",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "last-event-id" in allowed
    r = api.request(
        "GET",
        f"/v1/sessions/{s['id']}/stream",
        s["client_secret"],
        headers={"Origin": "https://shop.example"},
    )
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    other = api.request(
        "GET",
        f"/v1/sessions/{s['id']}/stream",
        s["client_secret"],
        headers={"Origin": "https://evil.example"},
    )
    assert "Access-Control-Allow-Origin" not in other.headers
