"""The README's backend example (examples/backend_handover.py) runs as written against `make dev`:
belvo-python registers a link and reads its accounts, each call's 428 handed to the service and
completed with the user's code, against the stack `python -m devstack` starts, with its defaults."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from devstack.processes import ROOT, free_port, wait_for


@pytest.fixture(scope="module")
def make_dev() -> Iterator[dict[str, str]]:
    """`python -m devstack` (what `make dev` runs) on free ports; its printed URL and API key."""
    ports = {"PORT": free_port(), "DEV_REDIS_PORT": free_port(), "DEV_SANDBOX_PORT": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BELVO_", "API_KEYS", "REDIS_URL"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env={**env, **{k: str(v) for k, v in ports.items()}},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("API key:" in line for line in lines) or proc.poll() is not None, 60, "make dev")
        banner = next((line for line in lines if "API key:" in line), "")
        found = re.search(r"on (http://\S+)\s+\(API key: (\S+)\)", banner)
        assert found, "".join(lines)
        yield {
            "SERVICE_URL": found.group(1),
            "API_KEY": found.group(2),
            "BELVO_URL": f"http://127.0.0.1:{ports['DEV_SANDBOX_PORT']}",
        }
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: make dev stops everything it started
        proc.wait(30)
        reader.join(5)
        proc.stdout.close()


def test_the_handover_example_runs_as_written_against_make_dev(make_dev: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELVO_")}
    for attempt in (1, 2):  # the second run proves it cleans up after itself (no duplicate link)
        done = subprocess.run(
            [sys.executable, "examples/backend_handover.py"],
            cwd=ROOT,
            env={**env, **make_dev},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (attempt, done.stdout, done.stderr)
        out = done.stdout
        assert "links: Belvo answered 428; handing it over" in out
        assert "accounts: Belvo answered 428; handing it over" in out
        assert re.search(r"link [0-9a-f-]{36}: valid", out) and "accounts: 2 (" in out, out
