"""Slow clients against real gunicorn: they hold nothing that ordinary requests need, and are cut off in time.

One gunicorn process, so nothing else could serve the ordinary requests. Each slow client is a real socket
that sends its request a header line, or a body byte, at a time (slowloris / slow POST), many more of them
than the old 2 x 4 threads: with those threads all waiting on such clients, every other request timed out.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.stack import Stack, build_stack

SLOW_CLIENTS = 64
DEADLINE_SECONDS = 3
DRIP_SECONDS = 0.5


class SlowClients:
    """Sockets that each send `opening`, then `drip` every DRIP_SECONDS, until the server hangs up."""

    def __init__(self, port: int, count: int, opening: bytes, drip: bytes) -> None:
        self.socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        self.opened = time.monotonic()
        for sock in self.socks:
            sock.sendall(opening)
        self.drip = drip
        self.drips = 0
        self.answers = {sock.fileno(): b"" for sock in self.socks}
        self.closed_after: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        open_socks = {sock.fileno(): sock for sock in self.socks}
        while open_socks and not self._stop.is_set():
            for fd, sock in list(open_socks.items()):
                try:
                    sock.sendall(self.drip)
                except OSError:
                    self._closed(fd, open_socks)
            self.drips += 1
            until = time.monotonic() + DRIP_SECONDS
            while open_socks and (left := until - time.monotonic()) > 0:
                readable, _, _ = select.select(list(open_socks.values()), [], [], left)
                for sock in readable:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        self.answers[sock.fileno()] += data
                    else:
                        self._closed(sock.fileno(), open_socks)

    def _closed(self, fd: int, open_socks: dict[int, socket.socket]) -> None:
        self.closed_after.setdefault(fd, time.monotonic() - self.opened)
        open_socks.pop(fd, None)

    @property
    def still_open(self) -> int:
        return len(self.socks) - len(self.closed_after)

    def wait_all_closed(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"{self.still_open} slow clients still connected after {timeout}s"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks:
            sock.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "WEB_HEADER_TIMEOUT_SECONDS": str(DEADLINE_SECONDS),
        "WEB_BODY_TIMEOUT_SECONDS": str(DEADLINE_SECONDS),
    }
    with build_stack(Path(tmp_path_factory.mktemp("slow")), env, web_workers=1) as built:
        yield built


def _ordinary_requests(stack: Stack, session: dict, slow: SlowClients) -> None:
    """Reads of the session and probes, each answered while every slow client is still connected."""
    assert stack.api is not None
    for _ in range(10):
        r = requests.get(
            f"{stack.api.url}/v1/sessions/{session['id']}",
            headers={"Authorization": f"Bearer {session['client_secret']}"},
            timeout=5,
        )
        assert r.status_code == 200 and r.json()["status"] == "awaiting_token"
        assert requests.get(f"{stack.api.url}/healthz", timeout=5).ok
    assert slow.still_open == SLOW_CLIENTS, "the slow clients were cut off before the test could use them"


def test_slow_header_clients_block_nobody_and_are_cut_off_at_the_deadline(stack: Stack) -> None:
    assert stack.api is not None and stack.web is not None
    session = stack.api.created(stack.sandbox.pause())
    opening = f"GET /v1/sessions/{session['id']} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    slow = SlowClients(stack.web.port, SLOW_CLIENTS, opening, b"X-Slow: 1\r\n")
    try:
        _ordinary_requests(stack, session, slow)
        slow.wait_all_closed(DEADLINE_SECONDS + 5)
        # Cut off by the deadline, although each kept sending: never answered, never served.
        assert max(slow.closed_after.values()) < DEADLINE_SECONDS + 2
        assert slow.drips >= 2
        assert all(not answer.startswith(b"HTTP/1.1 200") for answer in slow.answers.values())
    finally:
        slow.close()


def test_slow_body_clients_block_nobody_and_get_408_at_the_deadline(stack: Stack) -> None:
    assert stack.api is not None and stack.web is not None
    session = stack.api.created(stack.sandbox.pause())
    opening = (
        f"POST /v1/sessions/{session['id']}/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {session['client_secret']}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    ).encode()
    slow = SlowClients(stack.web.port, SLOW_CLIENTS, opening, b" ")  # 100 bytes would take 50 s
    try:
        _ordinary_requests(stack, session, slow)
        slow.wait_all_closed(DEADLINE_SECONDS + 5)
        assert max(slow.closed_after.values()) < DEADLINE_SECONDS + 2
        for answer in slow.answers.values():
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert b"application/problem+json" in head and b'"code": "request_timeout"' in body
    finally:
        slow.close()
    # The app never saw those submissions: the session still waits for its token.
    assert stack.status(session["id"]) == "awaiting_token"
    assert stack.record(session["id"])["version"] == "1"


def test_a_body_that_arrives_in_time_is_served_as_usual(stack: Stack) -> None:
    assert stack.api is not None
    session = stack.api.created(stack.sandbox.pause())
    chunks = (part for part in (b'{"tok', b'en": "111', b'111"}'))
    r = requests.post(
        f"{stack.api.url}/v1/sessions/{session['id']}/token",
        data=chunks,  # chunked transfer encoding: no Content-Length
        headers={"Authorization": f"Bearer {session['client_secret']}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    big = requests.post(
        f"{stack.api.url}/v1/sessions/{session['id']}/token",
        data=(b"x" * 4096 for _ in range(20)),  # 80 KiB, chunked: past MAX_BODY_BYTES
        headers={"Authorization": f"Bearer {session['client_secret']}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert big.status_code == 413 and big.json()["code"] == "payload_too_large"
    declared = requests.post(  # a Content-Length past the cap: refused without reading the body
        f"{stack.api.url}/v1/sessions/{session['id']}/token",
        data=b"x" * (80 * 1024),
        headers={"Authorization": f"Bearer {session['client_secret']}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert declared.status_code == 413 and declared.json()["code"] == "payload_too_large"
