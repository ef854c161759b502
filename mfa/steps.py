"""One upstream call for one step of a session: claim it, make it under a lease, record what it meant.

A step has at most one *uncertain* call: the call runs under a lease in Redis; if the process dies
mid-call, the lease lapses and any sweeper closes the step as `upstream_outcome_unknown` instead of
repeating a call Belvo may already have acted on. An attempt that ends with no answer, a 408 or a 5xx
is retried, and the step remembers that Belvo may have acted on it: a registration then finds the link
before it posts again (mfa/registration.py). The call made depends on the status the claim finds:
submitted -> the resume PATCH, registering -> the register POST, retrieving -> the data POST,
updating -> the link's update PUT.

A worker process runs many steps at once (WORKER_CONCURRENCY), each in its own thread; one CallLeases
keeps all their leases alive (mfa/leases.py). A Redis outage while a call is in flight does not lose
Belvo's answer: the record is retried, under the held lease, until Redis takes it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry.trace import SpanKind, StatusCode
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mfa import logs, metrics, tracing
from mfa.belvo import BelvoClient, UpstreamAnswer, UpstreamUnavailable, resource_path
from mfa.clock import now_ms
from mfa.leases import CallLeases
from mfa.outcomes import Decision, RetryPolicy, Verdict, decide, result_too_large
from mfa.registration import RegistrationUnresolved, register_once
from mfa.sealing import AtRest, Unsealable
from mfa.session import ClaimVerdict, MfaSession, SessionStatus
from mfa.store import SessionStore

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class StepUnusable(Exception):
    """The call cannot be made at all (its token or credentials are gone or cannot be opened)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.outcome = {"code": code, "message": message}


@dataclass(frozen=True)
class StepRunner:
    """Makes and records the upstream call of one (session, step, attempt); many may run at once."""

    store: SessionStore
    client: BelvoClient
    policy: RetryPolicy
    leases: CallLeases  # this process's calls in flight, their leases kept alive by one thread
    # Opens what the web sealed (tokens, bank credentials): SEALING_PRIVATE_KEYS.
    secrets: AtRest = field(default_factory=AtRest)
    # Seals Belvo's result bodies for the web: RESULT_PUBLIC_KEY.
    results: AtRest = field(default_factory=AtRest)
    result_max_bytes: int = 1024 * 1024

    def run(self, session_id: str, step: int, attempt: int) -> str:
        """Claim the attempt, call Belvo, record the answer; returns what happened, for the job's log."""
        with logs.bound(session_id=session_id, step=step, attempt=attempt):
            return self._run(session_id, step, attempt)

    def _run(self, session_id: str, step: int, attempt: int) -> str:
        claim = self.store.begin_call(session_id, step, now_ms(), self.leases.lease_ms, attempt)
        if claim.verdict is not ClaimVerdict.GO:
            log.info("session %s step %s: no call (%s)", session_id, step, claim.verdict.value)
            return str(claim.verdict.value)
        session = claim.session
        assert session is not None
        # The lease is held until the answer is recorded, not just while the call is in flight.
        with self.leases.hold(session_id) as deadline_ms:
            answer: UpstreamAnswer | None = None
            try:
                answer = self._send(session, claim.token)
            except (StepUnusable, RegistrationUnresolved) as exc:
                outcome, result = self._stored_result(dict(exc.outcome))  # the links an unresolved one lists
                self._stored(
                    session_id,
                    deadline_ms,
                    lambda: self.store.finish(
                        session_id, step, SessionStatus.FAILED, outcome, now_ms(), result=result
                    ),
                )
                log.error(
                    "session %s step %s: failed before the call (%s)", session_id, step, exc.outcome["code"]
                )
                return SessionStatus.FAILED.value
            except UpstreamUnavailable as exc:
                log.warning(
                    "session %s step %s attempt %s: no answer from Belvo (%s)",
                    session_id,
                    step,
                    claim.attempt,
                    exc,
                )
            decision = decide(answer, session.resource, uncertain=session.uncertain > 0)
            with tracing.span("record", mfa__verdict=decision.verdict.value) as span:
                recorded = self._stored(
                    session_id, deadline_ms, lambda: self.record(session, claim.attempt, decision)
                )
                span.set_attribute("mfa.result", recorded)
            return recorded

    @staticmethod
    def _stored(session_id: str, deadline_ms: int, write: Callable[[], _T]) -> _T:
        """Run `write` until Redis takes it, up to the hold's deadline: an outage must not turn an answer
        Belvo gave into an unknown one. Every write is a transition that checks where it starts, so one
        that did land before its reply was lost is refused the second time, never applied twice."""
        wait, waited = 0.1, False
        while True:
            try:
                result = write()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                left_ms = deadline_ms - now_ms()
                if left_ms <= 0:
                    raise
                if not waited:
                    log.warning(
                        "session %s: Redis unavailable (%s); holding the answer",
                        session_id,
                        type(exc).__name__,
                    )
                    waited = True
                time.sleep(min(wait, left_ms / 1000))  # short sleeps: a job timeout can still interrupt
                wait = min(wait * 2, 1.0)
                continue
            if waited:
                log.info("session %s: Belvo's answer recorded once Redis answered again", session_id)
            return result

    def _send(self, session: MfaSession, stored_token: bytes | None) -> UpstreamAnswer:
        resource = session.resource
        if session.status is SessionStatus.REGISTERING:
            credentials = self._credentials(session.id)
            # After an uncertain attempt this may list the links and adopt one: counted as one register.
            return self._call(
                "register",
                resource,
                "POST",
                "/api/links/",
                lambda: register_once(
                    self.client,
                    credentials,
                    earlier_uncertain=session.uncertain > 0,
                    started_at_ms=session.created_at_ms,
                ),
            )
        if session.status is SessionStatus.UPDATING:
            credentials = self._credentials(session.id)
            return self._call(
                "update",
                resource,
                "PUT",
                "/api/links/{id}/",
                lambda: self.client.update_link(session.link or "", credentials),
            )
        if session.status is SessionStatus.RETRIEVING:
            body = session.request or {"link": session.link}
            path = resource_path(resource)
            return self._call(
                "retrieve", resource, "POST", path, lambda: self.client.retrieve(resource, body)
            )
        token = None
        if session.expects_user_input:
            if stored_token is None:
                raise StepUnusable("token_missing", "The token was no longer stored")
            token = self._open(stored_token, "token_unreadable", "The stored token").decode()
        return self._call(
            "resume",
            resource,
            "PATCH",
            resource_path(resource),
            lambda: self.client.resume(
                resource,
                session=session.belvo_session or "",
                link=session.link,
                token=token,
                save_data=session.save_data,
            ),
        )

    @staticmethod
    def _call(
        operation: str, resource: str, method: str, path: str, send: Callable[[], UpstreamAnswer]
    ) -> UpstreamAnswer:
        """Make one call to Belvo (`path` a template: no ids), counted, timed and traced; Belvo's request
        id joins the log context."""
        started = time.perf_counter()
        with (
            metrics.upstream_call(operation, resource) as call,
            tracing.span(
                f"{method} {path}",
                SpanKind.CLIENT,
                http__request__method=method,
                url__path=path,
                mfa__operation=operation,
            ) as span,
        ):
            try:
                answer = send()
            except UpstreamUnavailable as exc:
                call.failed(str(exc))
                span.set_status(StatusCode.ERROR, str(exc))
                raise
            call.answered(answer.status)
            span.set_attribute("http.response.status_code", answer.status)
            if answer.request_id:
                span.set_attribute("belvo.request_id", answer.request_id)
                logs.bind(belvo_request_id=answer.request_id)  # undone when run() returns
        log.info(
            "Belvo answered %s to %s %s in %.0f ms",
            answer.status,
            method,
            path,
            (time.perf_counter() - started) * 1000,
        )
        return answer

    def _credentials(self, session_id: str) -> dict[str, Any]:
        sealed = self.store.sealed_credentials(session_id)
        if sealed is None:
            raise StepUnusable("credentials_missing", "The bank credentials were no longer stored")
        opened = self._open(sealed, "credentials_unavailable", "The stored credentials")
        try:
            fields: dict[str, Any] = json.loads(opened)
        except ValueError:  # not ours: e.g. sealed by the former Fernet key before an upgrade
            raise StepUnusable(
                "credentials_unavailable", "The stored credentials could not be read"
            ) from None
        return fields

    def _open(self, stored: bytes, code: str, what: str) -> bytes:
        try:
            return self.secrets.read(stored)
        except Unsealable as exc:
            log.error("%s could not be opened: %s (see SEALING_PRIVATE_KEYS)", what, exc)
            raise StepUnusable(code, f"{what} could not be opened with this worker's keys") from None

    def _stored_result(self, outcome: dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
        """The outcome to record and Belvo's body as stored: sealed, and only if within the size cap."""
        result = outcome.pop("result", None)
        if result is None:
            return outcome, None
        body = json.dumps(result, separators=(",", ":")).encode()
        if len(body) > self.result_max_bytes:  # never half-stored: the backend reads it from Belvo
            return result_too_large(outcome, len(body)), None
        return outcome, self.results.store(body)

    def record(self, session: MfaSession, attempt: int, decision: Decision) -> str:
        """Apply a decision to the step, atomically; a retry is listed for the sweeper to enqueue when due."""
        store, now = self.store, now_ms()
        status = decision.outcome.get("http_status")
        if decision.verdict is Verdict.NEXT_STEP:
            assert decision.pause is not None
            moved = store.next_step(session.id, session.step, decision.pause, now)
            log.info("session %s step %s: Belvo asked for a token", session.id, session.step)
            return "next_step" if moved else ClaimVerdict.STALE.value
        final, outcome, result = SessionStatus.FAILED, dict(decision.outcome), None
        if decision.verdict is Verdict.RETRY:
            retry_at = self.policy.retry_at(attempt, decision.retry_after, now, session.expires_at_ms or now)
            if retry_at is not None:
                store.release_call(session.id, session.step, now, retry_at, uncertain=decision.uncertain)
                metrics.retry_scheduled(status)
                log.info(
                    "session %s step %s attempt %s: upstream %s, retrying in %.2fs",
                    session.id,
                    session.step,
                    attempt,
                    status,
                    (retry_at - now) / 1000,
                )
                return "retry"
            outcome = {
                **outcome,
                "code": "upstream_unavailable",
                "message": f"Belvo was unavailable after {attempt} attempt(s)",
            }
        elif decision.verdict is Verdict.SUCCEEDED:
            final = SessionStatus.SUCCEEDED
            outcome, result = self._stored_result(outcome)
        outcome.pop("result", None)
        done = store.finish(
            session.id,
            session.step,
            final,
            outcome,
            now,
            result=result,
            link=_registered_link(session, decision),
        )
        log.info(
            "session %s step %s: %s (http %s, code %s)",
            session.id,
            session.step,
            final.value,
            status,
            outcome.get("code"),
        )
        return final.value if done else ClaimVerdict.STALE.value

    def abort(self, session_id: str, step: int, attempt: int) -> bool:
        """Close a step whose job for `attempt` raised (a bug, a timeout), so it still ends with a record."""
        return self.store.abort(session_id, step, attempt, now_ms())


def _registered_link(session: MfaSession, decision: Decision) -> str | None:
    """The id of the link a `links` call answered with, for the session's `link` (as an MFA step sets it)."""
    result = decision.outcome.get("result")
    if decision.verdict is Verdict.SUCCEEDED and session.resource == "links" and isinstance(result, dict):
        return str(result["id"])
    return None
