"""The MFA session: its statuses, the one codec of its Redis hash, the expiry rule and its public view."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel


class SessionStatus(str, Enum):
    """Where a session is in its life; mfa/store.py holds the transitions."""

    REGISTERING = "registering"
    RETRIEVING = "retrieving"
    UPDATING = "updating"
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

    @property
    def is_calling(self) -> bool:
        """True while an upstream call is to be made or is in flight."""
        return self in CALLING_STATUSES


FINAL_STATUSES = frozenset(
    {SessionStatus.SUCCEEDED, SessionStatus.FAILED, SessionStatus.EXPIRED, SessionStatus.CANCELLED}
)
# The first call of a flow the service started (register, retrieve, update a link's credentials): there
# is no Belvo session (and no expiry to show) yet.
FIRST_CALL_STATUSES = frozenset({SessionStatus.REGISTERING, SessionStatus.RETRIEVING, SessionStatus.UPDATING})
# "Calling": a call to Belvo is to be made or in flight (the resume after a token, or the first call).
CALLING_STATUSES = frozenset({SessionStatus.SUBMITTED, *FIRST_CALL_STATUSES})


class ClaimVerdict(str, Enum):
    """What the state machine answers a job that asks to make its call (SessionStore.begin_call)."""

    GO = "go"  # call Belvo now, under the lease
    GONE = "gone"  # the session no longer exists
    STALE = "stale"  # a duplicate or late job: another attempt or step is current
    BUSY = "busy"  # a call of this step is in flight under a live lease
    UNKNOWN = "unknown"  # an earlier call died in flight: closed as upstream_outcome_unknown
    EXPIRED = "expired"  # Belvo's session is over and no call was made: closed as expired
    FAILED = "failed"  # Belvo's session is over after calls that got no answer: closed as failed


class RecordField(str, Enum):
    """Every field of the session's Redis hash: the only place their names are written.

    The Lua transitions read them through the table `F` that mfa/scripts.py generates from this enum
    (F.status, F.expires_at, ...).
    """

    ID = "id"
    STATUS = "status"
    RESOURCE = "resource"
    LINK = "link"
    STEP = "step"
    CHALLENGE = "challenge"
    EXPECTS_INPUT = "expects_input"
    EXPIRES_AT = "expires_at"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    VERSION = "version"
    EXTERNAL_REF = "external_ref"
    OUTCOME = "outcome"
    BELVO_SESSION = "belvo_session"
    SAVE_DATA = "save_data"
    SECRET_HASH = "secret_hash"  # noqa: S105 - a field name, not a secret
    REQUEST = "request"
    ATTEMPTS = "attempts"
    IN_FLIGHT = "in_flight"
    UNCERTAIN = "uncertain"  # attempts of this step Belvo may have acted on (no answer, 408, 5xx)
    WEBHOOKS = "webhooks"  # the URLs its webhook events go to (JSON list), only when it has any
    # The API request whose call this is (its id and W3C traceparent), so a retry continues its trace.
    REQUEST_ID = "request_id"
    TRACEPARENT = "traceparent"


# Left out of the change log's snapshots (mfa/keys.py, mfa:events:{id}) and webhook events: a hash of the
# client secret, the retrieval's request body, where webhooks go and the telemetry context are no
# reader's business.
SNAPSHOT_EXCLUDED = frozenset(
    {
        RecordField.SECRET_HASH,
        RecordField.REQUEST,
        RecordField.WEBHOOKS,
        RecordField.REQUEST_ID,
        RecordField.TRACEPARENT,
    }
)
EVENTS_KEPT = 100  # entries kept per session (MAXLEN ~): far more than any session makes

# Outcomes the state machine records by itself; the Lua scripts get them through the generated prelude.
OUTCOME_EXPIRED = {"code": "session_expired", "message": "The MFA session expired before it could be resumed"}
OUTCOME_CANCELLED = {"code": "cancelled", "message": "The session was cancelled"}
OUTCOME_UNAVAILABLE = {"code": "upstream_unavailable", "message": "Belvo could not be reached in time"}
OUTCOME_UNKNOWN = {
    "code": "upstream_outcome_unknown",
    "message": "The worker stopped during the call to Belvo; not repeated, as Belvo may have acted on it",
}
OUTCOME_INTERNAL = {"code": "internal_error", "message": "The resume job failed; see the worker log"}
STANDARD_OUTCOMES = {
    "expired": OUTCOME_EXPIRED,
    "cancelled": OUTCOME_CANCELLED,
    "unavailable": OUTCOME_UNAVAILABLE,
    "unknown": OUTCOME_UNKNOWN,
    "internal": OUTCOME_INTERNAL,
}


class Audience(str, Enum):
    """Who reads a session, and so how much of it they see."""

    BACKEND = "backend"  # an API key: everything, Belvo's result and error bodies included
    FRONTEND = "frontend"  # a client secret, in the end user's browser: never Belvo's bodies


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


def new_session_id() -> str:
    """Our opaque session id: 128 random bits, unrelated to Belvo's session id."""
    return "mfa_" + secrets.token_hex(16)


def expects_user_input(challenge: Mapping[str, Any] | None) -> bool:
    """Belvo's default is true; only an explicit false means the user confirms elsewhere."""
    return challenge is None or challenge.get("expects_user_input", True) is not False


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if value is not None else ""


def _from_json(raw: str | None) -> Any:
    return json.loads(raw) if raw else None


def _flag(value: bool) -> str:
    return "1" if value else "0"


@dataclass(frozen=True)
class MfaSession:
    """A session as stored in its Redis hash; from_record and to_record are the hash's one codec."""

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
    attempts: int = 0
    in_flight: bool = False
    uncertain: int = 0
    version: int = 1
    request: dict[str, Any] | None = None
    webhooks: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, h: Mapping[str, str]) -> MfaSession:
        """Decode the Redis hash (decoded to str); a missing field reads as empty or zero."""
        f = RecordField
        save = h.get(f.SAVE_DATA, "")
        expires = h.get(f.EXPIRES_AT)
        return cls(
            id=h[f.ID],
            status=SessionStatus(h[f.STATUS]),
            resource=h.get(f.RESOURCE, "links"),
            link=h.get(f.LINK) or None,
            step=int(h.get(f.STEP, "1")),
            challenge=_from_json(h.get(f.CHALLENGE)),
            expires_at_ms=int(expires) if expires else None,
            created_at_ms=int(h[f.CREATED_AT]),
            updated_at_ms=int(h[f.UPDATED_AT]),
            external_ref=h.get(f.EXTERNAL_REF) or None,
            outcome=_from_json(h.get(f.OUTCOME)),
            belvo_session=h.get(f.BELVO_SESSION) or None,
            save_data=None if save == "" else save == "1",
            expects_user_input=h.get(f.EXPECTS_INPUT, "1") == "1",
            secret_hash=h.get(f.SECRET_HASH, ""),
            attempts=int(h.get(f.ATTEMPTS, "0")),
            in_flight=h.get(f.IN_FLIGHT, "0") == "1",
            uncertain=int(h.get(f.UNCERTAIN, "0")),
            version=int(h.get(f.VERSION, "1")),
            request=_from_json(h.get(f.REQUEST)),
            webhooks=tuple(_from_json(h.get(f.WEBHOOKS)) or ()),
        )

    def to_record(self) -> dict[str, str]:
        """The Redis hash. Empty fields are left out (from_record reads them back as empty or zero):
        fewer values to send, and less memory for each waiting session."""
        f = RecordField
        record = {
            f.ID: self.id,
            f.STATUS: self.status.value,
            f.RESOURCE: self.resource,
            f.LINK: self.link or "",
            f.STEP: str(self.step),
            f.CHALLENGE: _json(self.challenge),
            f.EXPECTS_INPUT: _flag(self.expects_user_input),
            f.EXPIRES_AT: "" if self.expires_at_ms is None else str(self.expires_at_ms),
            f.CREATED_AT: str(self.created_at_ms),
            f.UPDATED_AT: str(self.updated_at_ms),
            f.VERSION: str(self.version),
            f.EXTERNAL_REF: self.external_ref or "",
            f.OUTCOME: _json(self.outcome),
            f.BELVO_SESSION: self.belvo_session or "",
            f.SAVE_DATA: "" if self.save_data is None else _flag(self.save_data),
            f.SECRET_HASH: self.secret_hash,
            f.REQUEST: _json(self.request),
            f.ATTEMPTS: str(self.attempts) if self.attempts else "",
            f.IN_FLIGHT: "1" if self.in_flight else "",
            f.UNCERTAIN: str(self.uncertain) if self.uncertain else "",
            f.WEBHOOKS: _json(list(self.webhooks)) if self.webhooks else "",
        }
        return {name.value: value for name, value in record.items() if value != ""}

    def is_past_expiry(self, now_ms: int) -> bool:
        """True when Belvo's session is over, whatever our record says."""
        return self.expires_at_ms is not None and now_ms >= self.expires_at_ms

    def reads_expired(self, now_ms: int) -> bool:
        """The expiry rule: a session awaiting its token past expires_at is expired, swept or not."""
        return self.status is SessionStatus.AWAITING_TOKEN and self.is_past_expiry(now_ms)

    def public(self, now_ms: int, audience: Audience = Audience.BACKEND) -> dict[str, Any]:
        """The API's session object: never the token, never the client secret; for the FRONTEND
        audience, the outcome's code and message only (no result, no upstream error bodies)."""
        status, outcome = self.status, self.outcome
        if self.reads_expired(now_ms):
            status, outcome = SessionStatus.EXPIRED, OUTCOME_EXPIRED
        if outcome and audience is Audience.FRONTEND:
            outcome = {key: outcome.get(key) for key in ("http_status", "code", "message")}
        return {
            "id": self.id,
            "status": status.value,
            "resource": self.resource,
            "link": self.link,
            "step": self.step,
            "challenge": self.challenge,
            # While registering or retrieving there is no Belvo session yet; the deadline is internal.
            "expires_at": None if status in FIRST_CALL_STATUSES else rfc3339(self.expires_at_ms),
            "created_at": rfc3339(self.created_at_ms),
            "updated_at": rfc3339(self.updated_at_ms),
            "external_ref": self.external_ref,
            "outcome": Outcome(**outcome).model_dump() if outcome else None,
        }


@dataclass(frozen=True)
class NewSession:
    """What a session begins with: a pause the backend got (awaiting_token), or a first call to make."""

    status: SessionStatus
    resource: str
    secret_hash: str
    expiry_seconds: int  # Belvo's expiry of the pause, or our deadline for the first call
    link: str | None = None
    external_ref: str | None = None
    belvo_session: str | None = None
    challenge: dict[str, Any] | None = None
    save_data: bool | None = None
    request: dict[str, Any] | None = None  # the body of a retrieval's data call
    sealed_credentials: bytes | None = None  # a registration's or update's bank credentials, sealed
    webhooks: tuple[str, ...] = ()  # where its webhook events go: WEBHOOK_URL and its own callback_url
    id: str | None = None  # our id, when the caller made it first (new_session_id()); else made at create

    def build(self, session_id: str, now_ms: int) -> MfaSession:
        """The session record this start makes at `now_ms`."""
        return MfaSession(
            id=session_id,
            status=self.status,
            resource=self.resource,
            link=self.link,
            step=1,
            challenge=self.challenge,
            expires_at_ms=now_ms + self.expiry_seconds * 1000,
            created_at_ms=now_ms,
            updated_at_ms=now_ms,
            external_ref=self.external_ref,
            outcome=None,
            belvo_session=self.belvo_session,
            save_data=self.save_data,
            expects_user_input=expects_user_input(self.challenge),
            secret_hash=self.secret_hash,
            request=self.request,
            webhooks=self.webhooks,
        )
