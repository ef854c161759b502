"""The shapes of API bodies, validated by pydantic and published in the OpenAPI document."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from mfa.belvo import Resource
from mfa.pause import TokenRequired, first_of_list
from mfa.session import Outcome, SessionStatus

ExternalRef = Annotated[str, StringConstraints(max_length=200)]  # the caller's own reference
CallbackUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048),
    Field(
        description=(
            "Where this session's webhook events go, besides WEBHOOK_URL: an https URL (http only with "
            "WEBHOOK_ALLOW_HTTP=1) whose host is a public address (else 422)"
        ),
        json_schema_extra={"format": "uri"},
    ),
]


class CreateSessionBody(BaseModel):
    """`POST /v1/sessions`: a 428 body as Belvo sent it, and where to resume it."""

    model_config = ConfigDict(extra="forbid")
    token_required: Annotated[
        TokenRequired,
        BeforeValidator(
            first_of_list,
            json_schema_input_type=TokenRequired | Annotated[list[TokenRequired], Field(min_length=1)],
        ),
    ]
    resource: Resource = Field(
        "links",
        description="The collection whose call Belvo paused: the resume PATCHes it. Give the resource of "
        "the call that got the 428; a data call's 428 resumed as `links` meets Belvo's session_expired.",
    )
    save_data: StrictBool | None = Field(
        None,
        description="Sent on a data resource's resume; ignored for links and investments/portfolios, "
        "whose resume has none",
    )
    external_ref: ExternalRef | None = None
    callback_url: CallbackUrl | None = None


class TokenBody(BaseModel):
    """`POST /v1/sessions/{id}/token`."""

    model_config = ConfigDict(extra="forbid")
    # Printable ASCII only: other scripts' digits ("١٢٣") would be sent to Belvo and spend the step.
    token: Annotated[str, StringConstraints(pattern=r"^[ -~]{1,64}$")] | None = Field(
        None,
        description="1-64 printable ASCII characters. Required unless the session's challenge says"
        " expects_user_input: false (then send {}).",
    )

    def __repr__(self) -> str:  # never let a token reach a log through a repr
        return "TokenBody(token=***)"

    __str__ = __repr__


class SessionOut(BaseModel):
    """The session object every session route answers with."""

    id: str
    status: SessionStatus
    resource: str
    link: str | None
    step: int
    challenge: dict[str, Any] | None
    expires_at: str | None
    created_at: str
    updated_at: str
    external_ref: str | None
    outcome: Outcome | None


class CreatedSessionOut(SessionOut):
    """The session object at creation, with its client secret (shown only here)."""

    client_secret: str


class Problem(BaseModel):
    """RFC 9457 problem details, with our `code` and `request_id`."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    code: str
    request_id: str | None = None


def _iso_date_text(value: Any) -> Any:
    # Pydantic's lax date would take a Unix timestamp; Belvo's dates are YYYY-MM-DD strings only.
    if not isinstance(value, (str, date)):
        raise ValueError("must be a date string, YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_text)]
Secret = Annotated[SecretStr, Field(min_length=1, max_length=256)]
Pem = Annotated[SecretStr, Field(min_length=1, max_length=16 * 1024)]


class NoToken(BaseModel):
    """A body that refuses an MFA `token`: tokens go through a session (POST /v1/sessions/{id}/token),
    so none is ever stored in a request waiting in Redis."""

    token: SkipJsonSchema[Any] = Field(None, exclude=True, repr=False)

    @field_validator("token")
    @classmethod
    def _no_token(cls, value: Any) -> None:
        if value is not None:
            raise ValueError("not accepted here: an MFA token goes through POST /v1/sessions/{id}/token")
        return None


class StartedSessionOut(CreatedSessionOut):
    """A session whose first call to Belvo is on its way (status registering, retrieving or updating)."""

    status: SessionStatus
