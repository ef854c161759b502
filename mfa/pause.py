"""Belvo's HTTP 428 "token required" body: the pause a session starts from (or moves on to).

This is the one reader of a 428, used by the API's schema (a 428 the backend hands over) and by the
worker (a 428 Belvo answers a call with). Belvo's spec says `expiry` is an integer and marks no field
required; its MFA guide shows `"expiry": "720"`. Both forms are read, and a 428 without an expiry is
held for a default (DEFAULT_MFA_EXPIRY_SECONDS) rather than refused.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)

from mfa.nesting import MAX_CHALLENGE_DEPTH, deeper_than

# Belvo's example is 9600 s; a week bounds how long we hold anything for a session that never ends.
MAX_EXPIRY_SECONDS = 7 * 24 * 3600
# A 428 without `expiry`: Belvo's MFA sessions last minutes (its MFA guide shows 720 s, its payments
# API 10 minutes). Too long only means a late token meets Belvo's own session_expired.
DEFAULT_EXPIRY_SECONDS = 600

BelvoSessionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]
# A string of digits from 1 to MAX_EXPIRY_SECONDS (604800), no leading zero: the document states the
# exact rule the validator below applies.
_EXPIRY_TEXT = r"^(?:[1-9][0-9]{0,4}|[1-5][0-9]{5}|60[0-3][0-9]{3}|604[0-7][0-9]{2}|604800)$"
assert MAX_EXPIRY_SECONDS == 604800, "_EXPIRY_TEXT spells out this bound"
_WHOLE_SECONDS = "must be a whole number of seconds (an integer or a string of digits)"


def _expiry_seconds(value: Any) -> int:
    # A JSON integer (600, or 600.0), or a string of digits ("720", as Belvo's MFA guide shows it).
    # A bool, 600.5, "-5", "0600", " 60" or "1e3" is none of these.
    if isinstance(value, str):
        if not re.fullmatch(r"[1-9][0-9]{0,8}", value):
            raise ValueError(_WHOLE_SECONDS)
        value = int(value)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(_WHOLE_SECONDS)
    elif isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number of seconds")
    if not 0 < value <= MAX_EXPIRY_SECONDS:
        raise ValueError(f"must be more than 0 and at most {MAX_EXPIRY_SECONDS} seconds")
    return int(value)


ExpirySeconds = Annotated[
    int,
    BeforeValidator(
        _expiry_seconds,
        json_schema_input_type=Annotated[int, Field(gt=0, le=MAX_EXPIRY_SECONDS)]
        | Annotated[str, StringConstraints(pattern=_EXPIRY_TEXT)],
    ),
]


class TokenGenerationData(BaseModel):
    """Belvo's challenge; unknown fields are kept as given, nested at most MAX_CHALLENGE_DEPTH deep."""

    model_config = ConfigDict(extra="allow")
    instructions: str | None = None
    type: str | None = None
    value: str | None = None
    expects_user_input: StrictBool = True

    @model_validator(mode="before")
    @classmethod
    def _shallow(cls, data: Any) -> Any:
        # It is stored, logged as a change and shown on every read: a bounded shape, whoever sent it.
        if deeper_than(data, MAX_CHALLENGE_DEPTH):
            raise ValueError(f"token_generation_data nests deeper than {MAX_CHALLENGE_DEPTH} levels")
        return data


class TokenRequired(BaseModel):
    """One object of Belvo's HTTP 428 body."""

    model_config = ConfigDict(extra="allow")
    code: Literal["token_required"] | None = None
    session: BelvoSessionId
    link: UUID
    expiry: ExpirySeconds | None = Field(
        None,
        description="Seconds the session stays open: an integer, or a string of digits as Belvo's MFA "
        "guide shows it. Without it the session is held DEFAULT_MFA_EXPIRY_SECONDS.",
    )
    request_id: str | None = None
    token_generation_data: TokenGenerationData | None = None

    def expiry_or(self, default_seconds: int) -> int:
        """Belvo's expiry in seconds, or `default_seconds` when the 428 carried none."""
        return self.expiry if self.expiry is not None else default_seconds

    def challenge(self) -> dict[str, Any] | None:
        """The challenge as stored and shown: Belvo's token_generation_data, unknown fields kept."""
        tgd = self.token_generation_data
        return tgd.model_dump(mode="json") if tgd is not None else None


def first_of_list(value: Any) -> Any:
    """Belvo's spec sends a list of token-required objects, its samples a single object: take the first."""
    if isinstance(value, list):
        if not value:
            raise ValueError("must be an object or a non-empty list of objects")
        return value[0]
    return value
