"""What an upstream answer means for the step: done, failed, another MFA step, or try again."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pydantic import ValidationError

from app.models import TokenRequired
from worker.belvo import UpstreamAnswer

RETRYABLE_STATUSES = frozenset({408, 425, 429})


class Verdict(str, Enum):
    """The kinds of end a call can have."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NEXT_STEP = "next_step"
    RETRY = "retry"


@dataclass(frozen=True)
class Decision:
    """A verdict with the outcome to record (and, for a next step, Belvo's new pause)."""

    verdict: Verdict
    outcome: dict[str, Any] = field(default_factory=dict)
    pause: TokenRequired | None = None
    retry_after: float | None = None


def _errors(body: Any) -> list[Any] | None:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        return [body]
    return None


def _outcome(
    answer: UpstreamAnswer | None, code: str | None, message: str | None, **extra: Any
) -> dict[str, Any]:
    errors = _errors(answer.body) if answer is not None and answer.status >= 300 else None
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    return {
        "http_status": answer.status if answer is not None else None,
        "code": code or first.get("code"),
        "message": message or first.get("message"),
        "upstream_errors": errors,
        "upstream_request_id": first.get("request_id"),
        **extra,
    }


def _well_formed_result(resource: str, body: Any) -> bool:
    if resource == "links":
        return isinstance(body, dict) and "id" in body
    return isinstance(body, list)


def decide(answer: UpstreamAnswer | None, resource: str) -> Decision:
    """Map Belvo's answer (None: no answer at all) onto the step's fate."""
    if answer is None:
        return Decision(Verdict.RETRY, _outcome(None, "upstream_unavailable", "Belvo did not answer"))
    status = answer.status
    if status in (200, 201):
        if not answer.is_json or not _well_formed_result(resource, answer.body):
            return Decision(
                Verdict.FAILED,
                _outcome(answer, "upstream_invalid_response", "Belvo's answer was not the expected JSON"),
            )
        return Decision(Verdict.SUCCEEDED, _outcome(answer, None, None, result=answer.body))
    if status == 428:
        body = answer.body[0] if isinstance(answer.body, list) and answer.body else answer.body
        try:
            pause = TokenRequired.model_validate(body)
        except ValidationError:
            return Decision(
                Verdict.FAILED,
                _outcome(
                    answer, "upstream_invalid_response", "Belvo asked for a token without a usable session"
                ),
            )
        return Decision(Verdict.NEXT_STEP, pause=pause)
    if status in (401, 403):
        return Decision(
            Verdict.FAILED,
            _outcome(answer, "upstream_auth_failed", "Belvo refused this service's credentials"),
        )
    if status in RETRYABLE_STATUSES or status >= 500:
        return Decision(
            Verdict.RETRY, _outcome(answer, "upstream_unavailable", None), retry_after=answer.retry_after
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
