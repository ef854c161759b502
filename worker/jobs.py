"""RQ job functions. They take plain ids, are imported by dotted path, and raise so RQ records a failure.

resume_session makes at most one upstream call per attempt and at most one *uncertain* call per step:
the call runs under a lease in Redis; if the worker dies mid-call the lease lapses and the step is
closed as `upstream_outcome_unknown` instead of being repeated against Belvo.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq import Queue, get_current_job

from app.config import Settings
from app.dispatch import enqueue_resume
from app.models import MfaSession, SessionStatus
from app.services import now_ms
from app.store import SessionStore
from worker.belvo import BelvoClient, UpstreamAnswer, UpstreamUnavailable
from worker.outcomes import Decision, Verdict, decide

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerContext:
    """What a job needs, built once per worker process from the environment."""

    settings: Settings
    redis: Redis
    store: SessionStore
    client: BelvoClient
    queue: Queue


_contexts: dict[int, WorkerContext] = {}


def context(redis: Redis) -> WorkerContext:
    """The context bound to this job's Redis connection."""
    found = _contexts.get(id(redis))
    if found is None:
        settings = Settings.from_env().require_worker()
        client = BelvoClient(
            settings.belvo_base_url,
            settings.belvo_secret_id,
            settings.belvo_secret_password,
            settings.upstream_timeout_seconds,
        )
        found = WorkerContext(
            settings,
            redis,
            SessionStore(redis, settings.session_retention_seconds),
            client,
            Queue(settings.resume_queue, connection=redis),
        )
        _contexts[id(redis)] = found
    return found


class _LeaseKeeper:
    """Extends the call's lease while it is in flight, so only a dead worker lets it lapse."""

    def __init__(self, store: SessionStore, session_id: str, lease_ms: int) -> None:
        self._store, self._id, self._lease_ms = store, session_id, lease_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{session_id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._lease_ms / 3000):
            try:
                self._store.extend_lease(self._id, now_ms(), self._lease_ms)
            except Exception:  # noqa: BLE001 - a missed beat is survivable; the next one may land
                log.warning("session %s: could not extend the call lease", self._id)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def resume_session(session_id: str, step: int) -> str:
    """Send the step's resume PATCH to Belvo and record what it answered."""
    ctx = context(get_current_job().connection)
    lease_ms = int(ctx.settings.lease_seconds * 1000)
    claim = ctx.store.begin_call(session_id, step, now_ms(), lease_ms)
    if claim.verdict != "go":
        log.info("session %s step %s: no call (%s)", session_id, step, claim.verdict)
        return claim.verdict
    session = claim.session
    assert session is not None
    if session.expects_user_input and claim.token is None:
        ctx.store.finish(
            session_id,
            step,
            SessionStatus.FAILED,
            {"code": "token_missing", "message": "The token was no longer stored"},
            now_ms(),
        )
        return "failed"
    answer: UpstreamAnswer | None = None
    with _LeaseKeeper(ctx.store, session_id, lease_ms):
        try:
            answer = ctx.client.resume(
                session.resource,
                session=session.belvo_session or "",
                link=session.link,
                token=claim.token if session.expects_user_input else None,
                save_data=session.save_data,
            )
        except UpstreamUnavailable as exc:
            log.warning(
                "session %s step %s attempt %s: no answer from Belvo (%s)",
                session_id,
                step,
                claim.attempt,
                exc,
            )
    decision = decide(answer, session.resource)
    return record(ctx, session, claim.attempt, decision)


def record(ctx: WorkerContext, session: MfaSession, attempt: int, decision: Decision) -> str:
    """Apply a decision to the session, atomically; a retry is scheduled in the same transaction."""
    store, now = ctx.store, now_ms()
    status = decision.outcome.get("http_status")
    if decision.verdict is Verdict.NEXT_STEP:
        pause = decision.pause
        assert pause is not None
        tgd = pause.token_generation_data
        moved = store.next_step(
            session.id,
            session.step,
            belvo_session=pause.session,
            challenge=tgd.model_dump(mode="json") if tgd else None,
            expiry_seconds=pause.expiry,
            now_ms=now,
        )
        log.info("session %s step %s: Belvo asked for another token", session.id, session.step)
        return "next_step" if moved else "stale"
    if decision.verdict is Verdict.RETRY:
        delay = _backoff(ctx.settings, attempt, decision.retry_after)
        expires_at = session.expires_at_ms or now
        if attempt < ctx.settings.resume_max_attempts and now + delay * 1000 < expires_at:
            with ctx.redis.pipeline(transaction=True) as pipe:
                store.release_call(session.id, session.step, now, client=pipe)
                enqueue_resume(
                    ctx.queue,
                    ctx.settings,
                    pipe,
                    session,
                    now_ms=now,
                    attempt=attempt + 1,
                    delay_seconds=delay,
                )
                pipe.execute()
            log.info(
                "session %s step %s attempt %s: upstream %s, retrying in %.2fs",
                session.id,
                session.step,
                attempt,
                status,
                delay,
            )
            return "retry"
        final = SessionStatus.FAILED
        outcome = {
            **decision.outcome,
            "code": "upstream_unavailable",
            "message": f"Belvo was unavailable after {attempt} attempt(s)",
        }
    else:
        final = SessionStatus.SUCCEEDED if decision.verdict is Verdict.SUCCEEDED else SessionStatus.FAILED
        outcome = decision.outcome
    done = store.finish(session.id, session.step, final, outcome, now)
    log.info(
        "session %s step %s: %s (http %s, code %s)",
        session.id,
        session.step,
        final.value,
        status,
        outcome.get("code"),
    )
    return final.value if done else "stale"


def _backoff(settings: Settings, attempt: int, retry_after: float | None) -> float:
    delay = settings.resume_backoff_seconds * (2 ** (attempt - 1))
    return max(delay, retry_after or 0.0)


def on_job_failure(job: Any, connection: Redis, *exc_info: Any) -> None:
    """RQ's failure callback: a job that raised (a bug, a timeout) still ends its step with a record."""
    session_id, step = job.args
    ctx = context(connection)
    closed = ctx.store.abort(session_id, step, now_ms())
    log.error(
        "session %s step %s: job %s failed (%s); step closed: %s",
        session_id,
        step,
        job.id,
        exc_info[0].__name__ if exc_info else "?",
        closed,
    )
