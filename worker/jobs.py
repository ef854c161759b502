"""RQ job functions: thin. They take plain ids, are imported by dotted path (mfa/dispatch.py names them),
and hand the step to the core's StepRunner, which claims, calls and records it. Each runs in the context
its job's meta carries: the API request's id on every log line, and the request's trace continued."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from redis import Redis
from rq import get_current_job

from mfa import logs, tracing
from worker.runtime import runner

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _job_context(kind: str, session_id: str, step: int, attempt: int) -> Iterator[None]:
    """Log lines and spans of this job carry its request id, session, step and attempt."""
    job = get_current_job()
    meta: dict[str, Any] = job.meta if job is not None else {}
    with (
        logs.bound(
            request_id=meta.get("request_id"),
            job_id=job.id if job is not None else None,
            session_id=session_id,
            step=step,
            attempt=attempt,
        ),
        tracing.consuming(kind, meta, mfa__session_id=session_id, mfa__step=step, mfa__attempt=attempt),
    ):
        yield


def resume_session(session_id: str, step: int, attempt: int = 1) -> str:
    """Send the step's resume PATCH to Belvo and record what it answered."""
    with _job_context("resume_session", session_id, step, attempt):
        return runner().run(session_id, step, attempt)


def register_link(session_id: str, step: int, attempt: int = 1) -> str:
    """Register the link at Belvo with the sealed credentials and record what it answered."""
    with _job_context("register_link", session_id, step, attempt):
        return runner().run(session_id, step, attempt)


def retrieve_data(session_id: str, step: int, attempt: int = 1) -> str:
    """Ask Belvo for the link's data and record what it answered."""
    with _job_context("retrieve_data", session_id, step, attempt):
        return runner().run(session_id, step, attempt)


def update_link(session_id: str, step: int, attempt: int = 1) -> str:
    """Send the link's new credentials to Belvo (PUT /api/links/{id}/) and record what it answered."""
    with _job_context("update_link", session_id, step, attempt):
        return runner().run(session_id, step, attempt)


def on_job_failure(job: Any, connection: Redis, *exc_info: Any) -> None:
    """RQ's failure callback: a job that raised (a bug, a timeout) still ends its own step with a record,
    and only while its own attempt is the open one."""
    session_id, step, attempt = (*job.args, 1)[:3]  # jobs enqueued before attempts were named had two
    with logs.bound(request_id=job.meta.get("request_id"), job_id=job.id, session_id=session_id, step=step):
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
