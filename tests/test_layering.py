"""The three rooms stay apart: the core imports no web framework, and the worker never imports the web.

`make lint` checks the same contract statically (import-linter, pyproject.toml); these check what a
fresh interpreter actually loads, and that the worker's job contract resolves.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mfa.dispatch import ALL_PATHS
from mfa.errors import ConfigError
from worker.__main__ import check_job_paths

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "modules",
    ["worker.jobs", "worker.__main__", "mfa.store, mfa.steps, mfa.belvo, mfa.outcomes, mfa.settings"],
)
def test_importing_the_worker_or_the_core_loads_no_web_framework(modules):
    code = (
        f"import sys, {modules}; "
        "web = [m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'app')]; "
        "assert not web, web"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_every_job_the_web_enqueues_resolves_in_the_worker():
    assert len(ALL_PATHS) == 5
    check_job_paths()  # raises ConfigError naming a path that does not resolve


def test_a_job_path_that_does_not_resolve_stops_the_worker(monkeypatch):
    monkeypatch.setattr("worker.__main__.ALL_PATHS", ("worker.jobs.no_such_job",))
    with pytest.raises(ConfigError, match="no_such_job"):
        check_job_paths()
