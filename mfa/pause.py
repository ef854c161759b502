"""Belvo's HTTP 428 "token required" body: the pause a session starts from (or moves on to)."""

from __future__ import annotations

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

BelvoSessionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]


def _json_integer(value: Any) -> Any:
    # A JSON integer may be written 600 or 600.0; a string, a bool or 600.5 is not one.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be an integer")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number of seconds")
    return int(value)


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
    expiry: Annotated[int, BeforeValidator(_json_integer)] = Field(
        gt=0, le=MAX_EXPIRY_SECONDS, description="seconds the session stays open"
    )
    request_id: str | None = None
    token_generation_data: TokenGenerationData | None = None

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
