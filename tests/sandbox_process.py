"""The sandbox as its own process, for the tests that drive it over HTTP with the official SDK.

`python -m sandbox` on a free port, and small helpers for Belvo's answers; used by tests/test_sandbox.py
and tests/test_sandbox_links.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
SECRET = ("test-secret-id", "test-secret-password")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@contextlib.contextmanager
def running_sandbox(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start `python -m sandbox` on a free port; yield its URL; stop it with SIGTERM."""
    port_file = workdir / "port"
    command = [sys.executable, "-m", "sandbox", "--port", "0", "--port-file", str(port_file), *args]
    with open(workdir / "stderr", "wb") as stderr:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists():
            assert process.poll() is None, (workdir / "stderr").read_text()
            assert time.monotonic() < deadline, "sandbox did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port_file.read_text().strip()}"
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
    # Faults must not spew tracebacks on stderr.
    assert "Traceback" not in (workdir / "stderr").read_text()


def error_code(response: requests.Response) -> str:
    """The code of Belvo's one-error list (its request_id checked)."""
    [error] = response.json()
    assert HEX32.match(error["request_id"])
    return error["code"]


def outcome(response: requests.Response) -> tuple[int, str]:
    """The status and Belvo error code of an error answer."""
    return response.status_code, error_code(response)


class Received:
    """What a webhook receiver on loopback was sent: (headers, JSON body) per request, in order."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], Any]] = []
        self.arrived = threading.Event()


@contextlib.contextmanager
def webhook_receiver(status: int = 200) -> Iterator[tuple[str, Received]]:
    """An HTTP server on 127.0.0.1 that records every POST and answers `status`; yields its URL."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.requests.append((dict(self.headers), json.loads(raw or b"null")))
            received.arrived.set()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
