"""RQ job functions. They take plain ids, are imported by dotted path, and raise so RQ records a failure.

Each job makes one upstream call for its session (register, retrieve or resume) and records the answer.
A step has at most one *uncertain* call: the call runs under a lease in Redis; if the worker dies
mid-call, the lease lapses and the step is closed as `upstream_outcome_unknown` instead of being
repeated against Belvo, which may already have acted on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq import get_current_job

from app.config import Settings
from app.credentials import CredentialsUnreadable, CredentialVault
from app.models import MfaSession, SessionStatus
from app.services import now_ms
from app.store import OUTCOME_UNKNOWN, SessionStore
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


class StepUnusable(Exception):
    """The call cannot be made at all (its token or credentials are gone or unreadable)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.outcome = {"code": code, "message": message}


Send = Callable[[WorkerContext, MfaSession, str | None], UpstreamAnswer]


def _send_resume(ctx: WorkerContext, session: MfaSession, token: str | None) -> UpstreamAnswer:
    if session.expects_user_input and token is None:
        raise StepUnusable("token_missing", "The token was no longer stored")
    return ctx.client.resume(
        session.resource,
        session=session.belvo_session or "",
        link=session.link,
        token=token if session.expects_user_input else None,
        save_data=session.save_data,
    )


def _send_register(ctx: WorkerContext, session: MfaSession, _token: str | None) -> UpstreamAnswer:
    _, sealed = ctx.store.call_inputs(session.id)
    if sealed is None:
        raise StepUnusable("credentials_missing", "The bank credentials were no longer stored")
    if not ctx.settings.credentials_key:
        raise StepUnusable("credentials_unavailable", "CREDENTIALS_KEY is not set on the worker")
    try:
        fields = CredentialVault(ctx.settings.credentials_key).open(sealed)
    except CredentialsUnreadable:
        raise StepUnusable(
            "credentials_unavailable", "The stored credentials could not be decrypted"
        ) from None
    return ctx.client.register(fields)


def _send_retrieve(ctx: WorkerContext, session: MfaSession, _token: str | None) -> UpstreamAnswer:
    request, _ = ctx.store.call_inputs(session.id)
    return ctx.client.retrieve(session.resource, request or {"link": session.link})


def resume_session(session_id: str, step: int, attempt: int = 1) -> str:
    """Send the step's resume PATCH to Belvo and record what it answered."""
    return _run_step(session_id, step, attempt, _send_resume)


def register_link(session_id: str, step: int, attempt: int = 1) -> str:
    """Register the link at Belvo with the sealed credentials and record what it answered."""
    return _run_step(session_id, step, attempt, _send_register)


def retrieve_data(session_id: str, step: int, attempt: int = 1) -> str:
    """Ask Belvo for the link's data and record what it answered."""
    return _run_step(session_id, step, attempt, _send_retrieve)


def _run_step(session_id: str, step: int, attempt: int, send: Send) -> str:
    ctx = context(get_current_job().connection)
    lease_ms = int(ctx.settings.lease_seconds * 1000)
    claim = ctx.store.begin_call(session_id, step, now_ms(), lease_ms, attempt)
    if claim.verdict != "go":
        log.info("session %s step %s: no call (%s)", session_id, step, claim.verdict)
        return claim.verdict
    session = claim.session
    assert session is not None
    answer: UpstreamAnswer | None = None
    with _LeaseKeeper(ctx.store, session_id, lease_ms):
        try:
            answer = send(ctx, session, claim.token)
        except StepUnusable as exc:
            ctx.store.finish(session_id, step, SessionStatus.FAILED, exc.outcome, now_ms())
            log.error(
                "session %s step %s: failed before the call (%s)", session_id, step, exc.outcome["code"]
            )
            return "failed"
        except UpstreamUnavailable as exc:
            log.warning(
                "session %s step %s attempt %s: no answer from Belvo (%s)",
                session_id,
                step,
                claim.attempt,
                exc,
            )
    return record(ctx, session, claim.attempt, decide(answer, session.resource))


def record(ctx: WorkerContext, session: MfaSession, attempt: int, decision: Decision) -> str:
    """Apply a decision to the session, atomically; a retry is listed for the sweeper to enqueue when due."""
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
            link=str(pause.link),
            challenge=tgd.model_dump(mode="json") if tgd else None,
            expiry_seconds=pause.expiry,
            now_ms=now,
        )
        log.info("session %s step %s: Belvo asked for a token", session.id, session.step)
        return "next_step" if moved else "stale"
    if decision.verdict is Verdict.RETRY:
        delay = _backoff(ctx.settings, attempt, decision.retry_after)
        expires_at = session.expires_at_ms or now
        if attempt < ctx.settings.resume_max_attempts and now + delay * 1000 < expires_at:
            store.release_call(
                session.id, session.step, now, now + int(delay * 1000), unanswered=status is None
            )
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
        if outcome.get("code") == "session_expired" and session.unanswered:
            # An earlier attempt got no answer; Belvo may have acted on it and spent the session, so
            # its `session_expired` now does not mean the user was too late.
            outcome = {**outcome, **OUTCOME_UNKNOWN}
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
    session_id, step = job.args[:2]
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
