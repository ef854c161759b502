"""Enqueuing the upstream-call jobs by name: the web side never imports worker code."""

from __future__ import annotations

import math

from redis.client import Pipeline
from rq import Callback, Queue

from app.config import Settings
from app.models import MfaSession, SessionStatus

# The job that makes a session's upstream call, by the status the session is in while it waits.
JOBS = {
    SessionStatus.SUBMITTED: "worker.jobs.resume_session",
    SessionStatus.REGISTERING: "worker.jobs.register_link",
    SessionStatus.RETRIEVING: "worker.jobs.retrieve_data",
}
FAILURE_CALLBACK = "worker.jobs.on_job_failure"


def job_id(session: MfaSession, attempt: int) -> str:
    """Jobs are named after session, step and attempt, so registries and logs read plainly."""
    kind = JOBS[session.status].rsplit(".", 1)[1]
    return f"{kind}-{session.id}-s{session.step}-a{attempt}"


def enqueue_step(
    queue: Queue,
    settings: Settings,
    pipe: Pipeline,
    session: MfaSession,
    *,
    now_ms: int,
    attempt: int = 1,
) -> None:
    """Add the session's call job to `pipe`'s transaction; only ids travel, never a token or credential."""
    open_ms = max(1, (session.expires_at_ms or now_ms) - now_ms)
    options = dict(
        args=(session.id, session.step, attempt),
        job_id=job_id(session, attempt),
        # The horse must outlive one upstream call (connect + read timeouts) plus the Redis work.
        job_timeout=int(settings.upstream_timeout_seconds * 2 + 30),
        ttl=math.ceil(open_ms / 1000) + 60,  # a job still queued after the step's time is over is dropped
        result_ttl=0,  # the outcome lives in the session record, not in RQ
        failure_ttl=settings.session_retention_seconds,
        on_failure=Callback(FAILURE_CALLBACK),
        pipeline=pipe,
    )
    queue.enqueue(JOBS[session.status], **options)
