"""A real webhook receiver on loopback: records every request and answers as each test scripts it.

Each path has a queue of planned answers (an HTTP status, a status with headers, or HANG: hold the
request until the test releases it or the client gives up), then a default answer (200); while
`hanging` is set, every request is held. Requests are recorded when their body has been read, before
the answer is sent.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack.processes import wait_for

HANG = "hang"


@dataclass
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int | None = None  # the status sent, None while held (or never answered)


@dataclass
class Receiver:
    """The server's record and script; built by `receiving()`."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    plans: dict[str, deque[Any]] = field(default_factory=lambda: defaultdict(deque))
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    hanging: bool = False

    def plan(self, path: str, *answers: Any) -> None:
        """Answer the next requests to `path` with `answers` in turn: a status, (status, headers), or HANG."""
        self.plans[path].extend(answers)

    def on(self, path: str) -> list[Received]:
        """The requests to `path` so far."""
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait(self, path: str, count: int, timeout: float = 10, answered: bool = True) -> list[Received]:
        """Wait until `count` requests to `path` arrived (and, by default, were answered)."""

        def enough() -> list[Received] | None:
            got = [r for r in self.on(path) if r.answered is not None or not answered]
            return got if len(got) >= count else None

        found = wait_for(enough, timeout, f"{count} request(s) to {path}")
        assert isinstance(found, list)
        return found

    def held(self) -> int:
        """Requests held open right now (HANG)."""
        with self.lock:
            return sum(r.answered is None for r in self.received)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # the test output stays readable
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
            with receiver.lock:
                receiver.received.append(got)
                plans = receiver.plans[self.path]
                answer = HANG if receiver.hanging else plans.popleft() if plans else 200
            if answer == HANG:
                receiver.release.wait(60)
                self.close_connection = True
                return
            status, headers = answer if isinstance(answer, tuple) else (answer, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            got.answered = status

    return Handler


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver on a free loopback port, a thread per request; yields it, with `url` set."""
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
