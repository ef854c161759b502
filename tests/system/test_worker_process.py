"""The worker process never imports the web framework, even while it resumes a session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from devstack.processes import ROOT
from mfa.settings import role_env
from tests.stack import Stack, build_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with build_stack(tmp_path_factory.mktemp("worker-process")) as st:
        yield st


def test_a_worker_that_resumes_a_session_never_imports_flask(stack: Stack) -> None:
    """`python -X importtime` lists every module the process imports, up to its exit."""
    s, _ = stack.submitted()  # the resume job waits in the queue for the worker below
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "worker", "--burst"],
        cwd=ROOT,
        env=role_env({**os.environ, **stack.worker_env}, "worker"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert stack.outcome(s["id"]) == ("succeeded", None), "the worker ran the job"
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "import time:" in line
    }
    assert "rq.worker" in imported and "mfa.steps" in imported, "importtime output was read"
    assert not {name for name in imported if name.split(".")[0] in ("flask", "werkzeug", "app")}
