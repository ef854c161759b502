"""The session model: statuses, the record kept in Redis, and the validated shapes of API bodies."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints

# Belvo's resources with a data call and a resume PATCH; `links` has the register call instead.
DataResource = Literal[
    "accounts",
    "transactions",
    "balances",
    "owners",
    "invoices",
    "incomes",
    "recurring-expenses",
    "risk-insights",
]
Resource = Literal[("links", *get_args(DataResource))]  # one flat enum, so errors name just `resource`
# Belvo's example is 9600 s; a week bounds how long we hold anything for a session that never ends.
MAX_EXPIRY_SECONDS = 7 * 24 * 3600

BelvoSessionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]


class SessionStatus(str, Enum):
    """Where a session is in its life; see app/store.py for the transitions."""

    REGISTERING = "registering"
    RETRIEVING = "retrieving"
    AWAITING_TOKEN = "awaiting_token"  # noqa: S105 - a status, not a secret
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True once nothing more can happen to the session."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {SessionStatus.SUCCEEDED, SessionStatus.FAILED, SessionStatus.EXPIRED, SessionStatus.CANCELLED}
)


CALL_STATUSES = frozenset({SessionStatus.REGISTERING, SessionStatus.RETRIEVING})


def _json_integer(value: Any) -> Any:
    # A JSON integer may be written 600 or 600.0; a string, a bool or 600.5 is not one.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be an integer")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number of seconds")
    return int(value)


class TokenGenerationData(BaseModel):
    """Belvo's challenge; unknown fields are kept as given."""

    model_config = ConfigDict(extra="allow")
    instructions: str | None = None
    type: str | None = None
    value: str | None = None
    expects_user_input: StrictBool = True


class TokenRequired(BaseModel):
    """One object of Belvo's HTTP 428 body."""

    model_config = ConfigDict(extra="allow")
    code: Literal["token_required"] | None = None
    session: BelvoSessionId
    link: UUID
    expiry: Annotated[int, BeforeValidator(_json_integer)] = Field(
        gt=0, le=MAX_EXPIRY_SECONDS, description="seconds the session stays open"
    )
    request_id: str | None = None
    token_generation_data: TokenGenerationData | None = None


class Outcome(BaseModel):
    """How a step ended."""

    http_status: int | None = None
    code: str | None = None
    message: str | None = None
    result: Any = None
    upstream_errors: list[Any] | None = None
    upstream_request_id: str | None = None


def rfc3339(ms: int | None) -> str | None:
    """Milliseconds since the epoch as RFC 3339 UTC."""
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _json_or_none(raw: str | None) -> Any:
    return json.loads(raw) if raw else None


@dataclass(frozen=True)
class MfaSession:
    """A session as stored in its Redis hash (see app/store.py)."""

    id: str
    status: SessionStatus
    resource: str
    link: str | None
    step: int
    challenge: dict[str, Any] | None
    expires_at_ms: int | None
    created_at_ms: int
    updated_at_ms: int
    external_ref: str | None
    outcome: dict[str, Any] | None
    belvo_session: str | None
    save_data: bool | None
    expects_user_input: bool
    secret_hash: str
    attempts: int
    in_flight: bool
    unanswered: int = 0

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> MfaSession:
        """Decode the Redis hash (decoded to str) into a session."""
        save = h.get("save_data", "")
        return cls(
            id=h["id"],
            status=SessionStatus(h["status"]),
            resource=h.get("resource", "links"),
            link=h.get("link") or None,
            step=int(h.get("step", "1")),
            challenge=_json_or_none(h.get("challenge")),
            expires_at_ms=int(h["expires_at"]) if h.get("expires_at") else None,
            created_at_ms=int(h["created_at"]),
            updated_at_ms=int(h["updated_at"]),
            external_ref=h.get("external_ref") or None,
            outcome=_json_or_none(h.get("outcome")),
            belvo_session=h.get("belvo_session") or None,
            save_data=None if save == "" else save == "1",
            expects_user_input=h.get("expects_input", "1") == "1",
            secret_hash=h.get("secret_hash", ""),
            attempts=int(h.get("attempts", "0")),
            in_flight=h.get("in_flight", "0") == "1",
            unanswered=int(h.get("unanswered", "0")),
        )

    def is_past_expiry(self, now_ms: int) -> bool:
        """True when Belvo's session is over, whatever our record says."""
        return self.expires_at_ms is not None and now_ms >= self.expires_at_ms

    def public(self, now_ms: int) -> dict[str, Any]:
        """The API's session object: never the token, never the client secret."""
        status, outcome = self.status, self.outcome
        if status is SessionStatus.AWAITING_TOKEN and self.is_past_expiry(now_ms):
            status = SessionStatus.EXPIRED
            outcome = {
                "code": "session_expired",
                "message": "The MFA session expired before a token was given",
            }
        return {
            "id": self.id,
            "status": status.value,
            "resource": self.resource,
            "link": self.link,
            "step": self.step,
            "challenge": self.challenge,
            # While registering or retrieving there is no Belvo session yet; the deadline is internal.
            "expires_at": None if status in CALL_STATUSES else rfc3339(self.expires_at_ms),
            "created_at": rfc3339(self.created_at_ms),
            "updated_at": rfc3339(self.updated_at_ms),
            "external_ref": self.external_ref,
            "outcome": Outcome(**outcome).model_dump() if outcome else None,
        }


def expects_user_input(challenge: dict[str, Any] | None) -> bool:
    """Belvo's default is true; only an explicit false means the user confirms elsewhere."""
    return challenge is None or challenge.get("expects_user_input", True) is not False


def new_record(
    session_id: str,
    *,
    status: SessionStatus,
    resource: str,
    link: str | None,
    expires_at_ms: int,
    now_ms: int,
    secret_hash: str,
    external_ref: str | None,
    belvo_session: str = "",
    challenge: dict[str, Any] | None = None,
    save_data: bool | None = None,
    request: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The Redis hash of a new session (MfaSession.from_hash reads it back).

    Empty fields are left out (from_hash and the scripts read a missing field as empty or zero): fewer
    values to send, and less memory for each waiting session.
    """
    record = {
        "id": session_id,
        "status": status.value,
        "resource": resource,
        "link": link or "",
        "step": "1",
        "challenge": json.dumps(challenge, separators=(",", ":")) if challenge is not None else "",
        "expires_at": str(expires_at_ms),
        "created_at": str(now_ms),
        "updated_at": str(now_ms),
        "external_ref": external_ref or "",
        "belvo_session": belvo_session,
        "save_data": "" if save_data is None else ("1" if save_data else "0"),
        "expects_input": "1" if expects_user_input(challenge) else "0",
        "secret_hash": secret_hash,
        "request": json.dumps(request, separators=(",", ":")) if request is not None else "",
    }
    return {field: value for field, value in record.items() if value != ""}
