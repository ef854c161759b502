"""RQ job functions: thin. They take plain ids, are imported by dotted path (mfa/dispatch.py names them),
and hand the step to the core's StepRunner, which claims, calls and records it."""

from __future__ import annotations

import logging
from typing import Any

from redis import Redis

from worker.runtime import runner

log = logging.getLogger(__name__)


def resume_session(session_id: str, step: int, attempt: int = 1) -> str:
    """Send the step's resume PATCH to Belvo and record what it answered."""
    return runner().run(session_id, step, attempt)


def register_link(session_id: str, step: int, attempt: int = 1) -> str:
    """Register the link at Belvo with the sealed credentials and record what it answered."""
    return runner().run(session_id, step, attempt)


def retrieve_data(session_id: str, step: int, attempt: int = 1) -> str:
    """Ask Belvo for the link's data and record what it answered."""
    return runner().run(session_id, step, attempt)


def update_link(session_id: str, step: int, attempt: int = 1) -> str:
    """Send the link's new credentials to Belvo (PUT /api/links/{id}/) and record what it answered."""
    return runner().run(session_id, step, attempt)


def on_job_failure(job: Any, connection: Redis, *exc_info: Any) -> None:
    """RQ's failure callback: a job that raised (a bug, a timeout) still ends its own step with a record,
    and only while its own attempt is the open one."""
    session_id, step, attempt = (*job.args, 1)[:3]  # jobs enqueued before attempts were named had two
    closed = runner().abort(session_id, step, attempt)
    log.error(
        "session %s step %s attempt %s: job %s failed (%s); step closed: %s",
        session_id,
        step,
        attempt,
        job.id,
        exc_info[0].__name__ if exc_info else "?",
        closed,
    )
