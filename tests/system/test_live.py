"""Live status on real processes: two gunicorn hosts on one Redis, an RQ worker, and a Redis restart.

A stream held by one web process follows a resume submitted through the other and run by the worker:
changes reach it only through Redis (the change log and mfa:changed). Every read has a deadline, so a
stream that hangs fails the test instead of stalling it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.sse import Block, StreamReader
from tests.stack import Stack, build_stack
from tests.support import Api

HEARTBEAT_SECONDS = 0.5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"STREAM_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS)}
    with build_stack(Path(tmp_path_factory.mktemp("live")), env, web_workers=1, workers=1) as built:
        yield built


@pytest.fixture(scope="module")
def hosts(stack: Stack) -> tuple[Api, Api]:
    """Two web processes (separate gunicorn masters, one worker each) on the stack's one Redis."""
    assert stack.api is not None and stack.web is not None
    first, first_pid = stack.api, stack.web.popen.pid
    second = stack.start_web(name="web2")
    assert stack.web.popen.pid != first_pid
    return first, second


@contextmanager
def streaming(
    api: Api, session_id: str, credential: str, last_event_id: int | None = None
) -> Iterator[StreamReader]:
    headers = {"Authorization": f"Bearer {credential}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    # The read timeout bounds every wait for bytes: heartbeats come every HEARTBEAT_SECONDS.
    r = requests.get(
        f"{api.url}/v1/sessions/{session_id}/stream", headers=headers, stream=True, timeout=(5, 10)
    )
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    try:
        yield StreamReader(r.iter_content(chunk_size=None))
    finally:
        r.close()


def _events(blocks: list[Block]) -> list[tuple[int, str]]:
    return [(int(b.id or 0), b.session()["status"]) for b in blocks if b.is_event]


def test_a_stream_on_one_host_follows_a_resume_submitted_on_the_other(
    stack: Stack, hosts: tuple[Api, Api]
) -> None:
    watching, submitting = hosts
    s = watching.created(stack.sandbox.pause())
    secret = s["client_secret"]
    with streaming(watching, s["id"], secret) as stream:
        assert _events([stream.next_event()]) == [(1, "awaiting_token")]  # type: ignore[list-item]
        r = submitting.submit(s["id"], "111111", credential=secret)
        assert r.status_code == 202
        rest = stream.rest(timeout=15)  # submitted, then succeeded by the worker; then the stream ends
    assert _events(rest) == [(2, "submitted"), (3, "succeeded")]
    final = next(b for b in rest if b.id == "3").session()
    assert final == submitting.get(s["id"], credential=secret).json()


def test_last_event_id_resumes_on_either_host(stack: Stack, hosts: tuple[Api, Api]) -> None:
    first, second = hosts
    s = first.created(stack.sandbox.pause())
    secret = s["client_secret"]
    first.submit(s["id"], "999999", credential=secret)  # a second step, then success
    first.wait(s["id"], {"awaiting_token"}, step=2)
    first.submit(s["id"], "111111", credential=secret)
    first.wait(s["id"])
    for api in hosts:
        with streaming(api, s["id"], secret, last_event_id=2) as stream:
            assert _events(stream.rest()) == [(3, "awaiting_token"), (4, "submitted"), (5, "succeeded")]
    done = requests.get(
        f"{second.url}/v1/sessions/{s['id']}/stream",
        headers={"Authorization": f"Bearer {secret}", "Last-Event-ID": "5"},
        timeout=5,
    )
    assert done.status_code == 204


def test_a_wrong_credential_gets_404_and_no_stream(stack: Stack, hosts: tuple[Api, Api]) -> None:
    api = hosts[0]
    s = api.created(stack.sandbox.pause())
    other = api.created(stack.sandbox.pause())
    r = requests.get(
        f"{api.url}/v1/sessions/{s['id']}/stream",
        headers={"Authorization": f"Bearer {other['client_secret']}"},
        timeout=5,
    )
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["code"] == "session_not_found"


def test_a_long_poll_on_one_host_answers_a_change_made_on_the_other(
    stack: Stack, hosts: tuple[Api, Api]
) -> None:
    polling, submitting = hosts
    s = polling.created(stack.sandbox.pause())
    secret = s["client_secret"]
    answers: list[requests.Response] = []
    poll = threading.Thread(
        target=lambda: answers.append(
            requests.get(
                f"{polling.url}/v1/sessions/{s['id']}",
                params={"wait": 20, "after": 1},
                headers={"Authorization": f"Bearer {secret}"},
                timeout=30,
            )
        )
    )
    started = time.monotonic()
    poll.start()
    time.sleep(0.5)  # the stimulus: a change while the long-poll waits
    assert submitting.submit(s["id"], "111111", credential=secret).status_code == 202
    poll.join(30)
    assert answers and answers[0].status_code == 200
    assert answers[0].json()["version"] >= 2 and time.monotonic() - started < 15
    timed_out = requests.get(
        f"{polling.url}/v1/sessions/{s['id']}",
        params={"wait": 1, "after": polling.wait(s["id"])["version"]},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )
    assert timed_out.json()["status"] == "succeeded"


def test_streams_ride_out_a_redis_restart_and_resume_with_what_they_missed(
    stack: Stack, hosts: tuple[Api, Api]
) -> None:
    first, second = hosts
    sessions = [(api, api.created(stack.sandbox.pause())) for api in (first, second, first, second)]
    with open_streams(sessions) as streams:
        for stream in streams:
            assert _events([stream.next_event()]) == [(1, "awaiting_token")]  # type: ignore[list-item]
        stack.kill_redis()
        for stream in streams:
            # Redis is down: each stream goes on (heartbeats), and neither ends nor hangs.
            beat = stream.next_block(timeout=5)
            assert beat is not None and beat.comments == ["heartbeat"]
        stack.restart_redis()  # AOF fsync always: nothing acknowledged is lost
        # At once, perhaps before a feed has subscribed again: an announcement made then reaches no
        # one, and only the re-read of the log on resubscription brings the change to its streams.
        for api, s in sessions:
            r = api.submit(s["id"], "111111", credential=s["client_secret"])
            assert r.status_code == 202, r.text
        for stream in streams:
            assert _events(stream.rest(timeout=20)) == [(2, "submitted"), (3, "succeeded")]


@contextmanager
def open_streams(sessions: list[tuple[Api, dict]]) -> Iterator[list[StreamReader]]:
    """One stream per (host, session), all open for the block."""
    responses = []
    try:
        readers = []
        for api, s in sessions:
            r = requests.get(
                f"{api.url}/v1/sessions/{s['id']}/stream",
                headers={"Authorization": f"Bearer {s['client_secret']}"},
                stream=True,
                timeout=(5, 10),
            )
            assert r.status_code == 200
            responses.append(r)
            readers.append(StreamReader(r.iter_content(chunk_size=None)))
        yield readers
    finally:
        for r in responses:
            r.close()


def test_a_stopping_web_process_ends_its_streams_with_a_retry_hint_and_exits_promptly(
    stack: Stack, hosts: tuple[Api, Api]
) -> None:
    leaving = stack.start_web(name="web3")
    proc = stack.web
    assert proc is not None
    s = leaving.created(stack.sandbox.pause())
    with streaming(leaving, s["id"], s["client_secret"]) as stream:
        assert stream.next_event() is not None
        stopped_at = time.monotonic()
        proc.signal(signal.SIGTERM)
        rest = stream.rest(timeout=10)
    assert [b.retry for b in rest if not b.comments] == [2000]  # the stream's last word: come back
    proc.popen.wait(15)
    # Well inside gunicorn's graceful_timeout (20 s), which open streams would otherwise use up.
    assert time.monotonic() - stopped_at < 10
    # The client comes back to another host and resumes where it was.
    with streaming(hosts[1], s["id"], s["client_secret"], last_event_id=1) as resumed:
        hosts[1].cancel(s["id"])
        assert _events(resumed.rest()) == [(2, "cancelled")]
