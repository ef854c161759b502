"""The baseline's RQ job: does nothing but note when it started, so dispatch can be timed."""

from __future__ import annotations

import time

from rq import get_current_job

STARTED_KEY = "bench:noop:started:"


def noop(sample: str | None = None) -> None:
    """Record this job's start time (wall clock, as the sandbox's `at`) under its sample name."""
    if sample is not None:
        get_current_job().connection.set(STARTED_KEY + sample, repr(time.time()), ex=600)
