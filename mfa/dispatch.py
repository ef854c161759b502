"""The web/worker contract: which job makes a session's upstream call, and how it is enqueued.

The web and the sweeper enqueue jobs by dotted path, so neither imports worker code; the worker checks
at start-up that every path here resolves (worker/__main__.py). Only ids travel in a job, never a token
or a credential (RQ stores job arguments in Redis).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from redis.client import Pipeline
from rq import Callback, Queue

from mfa import tracing
from mfa.session import MfaSession, SessionStatus

# The job that makes a session's upstream call, by the status the session is in while it waits.
JOBS = {
    SessionStatus.SUBMITTED: "worker.jobs.resume_session",
    SessionStatus.REGISTERING: "worker.jobs.register_link",
    SessionStatus.RETRIEVING: "worker.jobs.retrieve_data",
    SessionStatus.UPDATING: "worker.jobs.update_link",
}
FAILURE_CALLBACK = "worker.jobs.on_job_failure"
ALL_PATHS = (*JOBS.values(), FAILURE_CALLBACK)


def job_timeout_seconds(upstream_timeout_seconds: float) -> int:
    """RQ's timeout of a call job: one upstream call (connect + read timeouts) plus the Redis work."""
    return int(upstream_timeout_seconds * 2 + 30)


def job_id(session: MfaSession, attempt: int) -> str:
    """Jobs are named after session, step and attempt, so registries and logs read plainly."""
    kind = JOBS[session.status].rsplit(".", 1)[1]
    return f"{kind}-{session.id}-s{session.step}-a{attempt}"


@dataclass(frozen=True)
class Dispatcher:
    """Adds a session's call job to a Redis transaction; given once to the store that commits it."""

    queue: Queue
    upstream_timeout_seconds: float
    failure_ttl_seconds: int

    def enqueue(
        self,
        pipe: Pipeline,
        session: MfaSession,
        *,
        now_ms: int,
        attempt: int = 1,
        origin: Mapping[str, str] | None = None,
    ) -> None:
        """Add the job for (session, step, attempt) to `pipe`'s transaction.

        The job's meta (never its arguments) carries the request id and trace context of `origin`, the
        request that caused the call (a retry's, stored with the session), or else of the current one.
        """
        open_ms = max(1, (session.expires_at_ms or now_ms) - now_ms)
        path = JOBS[session.status]
        kind = path.rsplit(".", 1)[1]
        attributes = {"mfa__session_id": session.id, "mfa__step": session.step, "mfa__attempt": attempt}
        with tracing.producing(f"enqueue {kind}", origin, **attributes) as meta:
            self.queue.enqueue(
                path,
                args=(session.id, session.step, attempt),
                job_id=job_id(session, attempt),
                job_timeout=job_timeout_seconds(self.upstream_timeout_seconds),
                ttl=math.ceil(open_ms / 1000) + 60,  # a job queued after the step's time is over is dropped
                result_ttl=0,  # the outcome lives in the session record, not in RQ
                failure_ttl=self.failure_ttl_seconds,
                on_failure=Callback(FAILURE_CALLBACK),
                meta=meta,
                pipeline=pipe,
            )
