"""The sandbox as its own process, for the tests that drive it over HTTP with the official SDK.

`python -m sandbox` on a free port, and small helpers for Belvo's answers; the tests in tests/upstream/
get one through their conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
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
