"""What an upstream answer means for the step: done, failed, another MFA step, or try again."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from mfa.belvo import UpstreamAnswer, well_formed_result
from mfa.pause import TokenRequired, first_of_list

RETRYABLE_STATUSES = frozenset({408, 425, 429})
# Answers after which Belvo may have acted on the call: none at all, a timeout (408: the institution
# took too long, the work may be done) or a 5xx. A 425 or 429 refused the call before any work.
UNCERTAIN_STATUSES = frozenset({408})
OUTCOME_UNCERTAIN = {
    "code": "upstream_outcome_unknown",
    "message": "An earlier attempt got no usable answer and Belvo may have acted on it; "
    "check the link with Belvo",
}
# Belvo's error list is kept in the outcome (record and change log) only up to this size.
MAX_ERRORS_BYTES = 8 * 1024
RESULT_TOO_LARGE = "result_too_large"


@dataclass(frozen=True)
class RetryPolicy:
    """How many calls a step gets, and the wait between them (RESUME_MAX_ATTEMPTS, RESUME_BACKOFF_SECONDS)."""

    max_attempts: int
    backoff_seconds: float

    def retry_at(
        self, attempt: int, retry_after: float | None, now_ms: int, expires_at_ms: int
    ) -> int | None:
        """When attempt `attempt + 1` is due (ms), or None when retries are spent or would start too late.

        The wait doubles with each attempt and is never shorter than Belvo's Retry-After; no retry is
        listed that would start at or after expires_at, when Belvo's session is over.
        """
        delay = max(self.backoff_seconds * (2 ** (attempt - 1)), retry_after or 0.0)
        due = now_ms + int(delay * 1000)
        if attempt < self.max_attempts and due < expires_at_ms:
            return due
        return None


class Verdict(str, Enum):
    """The kinds of end a call can have."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NEXT_STEP = "next_step"
    RETRY = "retry"


@dataclass(frozen=True)
class Decision:
    """A verdict with the outcome to record (and, for a next step, Belvo's new pause).

    `uncertain`: a RETRY after an attempt Belvo may have acted on (no answer, 408, 5xx); the step
    remembers it, so a later answer that only makes sense if Belvo did act is not read as final.
    """

    verdict: Verdict
    outcome: dict[str, Any] = field(default_factory=dict)
    pause: TokenRequired | None = None
    retry_after: float | None = None
    uncertain: bool = False


def _errors(body: Any) -> list[Any] | None:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        return [body]
    return None


def _kept_errors(errors: list[Any] | None) -> list[Any] | None:
    # An error list larger than any Belvo sends is not kept whole: its first error's code still is.
    if errors is not None and len(json.dumps(errors, separators=(",", ":"))) > MAX_ERRORS_BYTES:
        return None
    return errors


def result_too_large(outcome: dict[str, Any], size: int | None = None) -> dict[str, Any]:
    """A success whose body is not stored: the backend reads it from Belvo with the link and resource."""
    seen = f" ({size} bytes)" if size is not None else ""
    return {
        **outcome,
        "result": None,
        "code": RESULT_TOO_LARGE,
        "message": f"Belvo's answer{seen} is over RESULT_MAX_BYTES, so it is not stored;"
        " read it from Belvo with the session's link and resource",
    }


def _outcome(
    answer: UpstreamAnswer | None, code: str | None, message: str | None, **extra: Any
) -> dict[str, Any]:
    errors = _errors(answer.body) if answer is not None and answer.status >= 300 else None
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    return {
        "http_status": answer.status if answer is not None else None,
        "code": code or first.get("code"),
        "message": message or first.get("message"),
        "upstream_errors": _kept_errors(errors),
        "upstream_request_id": first.get("request_id"),
        **extra,
    }


# A resume of `links` that Belvo answers session_expired: the usual cause besides a slow user is a 428
# from a data call handed over without its `resource`, so the resume went to the wrong collection.
LINKS_SESSION_EXPIRED_HINT = (
    " (this step was resumed with PATCH /api/links/: if Belvo's 428 came from a data call, the session "
    "needed that call's `resource`)"
)


def decide(answer: UpstreamAnswer | None, resource: str, *, uncertain: bool = False) -> Decision:
    """Map Belvo's answer (None: no answer at all) onto the step's fate.

    `uncertain`: an earlier attempt of this step may have been acted on by Belvo (it got no answer, a
    408 or a 5xx), so Belvo may have spent its session; a `session_expired` now then does not mean the
    user was too late, and is recorded as upstream_outcome_unknown.
    """
    decision = _decide(answer, resource)
    if decision.verdict is not Verdict.FAILED or decision.outcome.get("code") != "session_expired":
        return decision
    if uncertain:
        return Decision(Verdict.FAILED, {**decision.outcome, **OUTCOME_UNCERTAIN})
    if resource == "links":
        message = (
            decision.outcome.get("message") or "The MFA session has expired"
        ) + LINKS_SESSION_EXPIRED_HINT
        return Decision(Verdict.FAILED, {**decision.outcome, "message": message})
    return decision


def _decide(answer: UpstreamAnswer | None, resource: str) -> Decision:
    if answer is None:
        return Decision(
            Verdict.RETRY, _outcome(None, "upstream_unavailable", "Belvo did not answer"), uncertain=True
        )
    status = answer.status
    if status in (200, 201):
        if answer.oversized:  # Belvo acted: a success, its body too large to read, let alone store
            return Decision(Verdict.SUCCEEDED, result_too_large(_outcome(answer, None, None)))
        if not answer.is_json or not well_formed_result(resource, answer.body):
            return Decision(
                Verdict.FAILED,
                _outcome(answer, "upstream_invalid_response", "Belvo's answer was not the expected JSON"),
            )
        return Decision(Verdict.SUCCEEDED, _outcome(answer, None, None, result=answer.body))
    if status == 428:
        try:
            pause = TokenRequired.model_validate(first_of_list(answer.body))
        except ValueError:  # pydantic's ValidationError, or an empty list
            return Decision(
                Verdict.FAILED,
                _outcome(
                    answer, "upstream_invalid_response", "Belvo asked for a token without a usable session"
                ),
            )
        return Decision(Verdict.NEXT_STEP, pause=pause)
    if status == 401:  # Belvo refused our secret keys; a 403 is a resource this account may not use
        return Decision(
            Verdict.FAILED,
            _outcome(answer, "upstream_auth_failed", "Belvo refused this service's credentials"),
        )
    if status in RETRYABLE_STATUSES or status >= 500:
        return Decision(
            Verdict.RETRY,
            _outcome(answer, "upstream_unavailable", None),
            retry_after=answer.retry_after,
            uncertain=status in UNCERTAIN_STATUSES or status >= 500,
        )
    if 400 <= status < 500:
        if not answer.is_json:
            return Decision(Verdict.FAILED, _outcome(answer, "upstream_rejected", "Belvo rejected the call"))
        return Decision(Verdict.FAILED, _outcome(answer, None, None) | _fallback_code(answer))
    return Decision(
        Verdict.FAILED, _outcome(answer, "upstream_invalid_response", f"Unexpected HTTP {status}")
    )


def _fallback_code(answer: UpstreamAnswer) -> dict[str, Any]:
    errors = _errors(answer.body) or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    if first.get("code"):
        return {}
    return {"code": "upstream_rejected", "message": first.get("message") or "Belvo rejected the call"}
