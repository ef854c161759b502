"""The shapes of API bodies, validated by pydantic and published in the OpenAPI document."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

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

from mfa.belvo import DataResource, Resource
from mfa.pause import TokenRequired, first_of_list
from mfa.session import Outcome, SessionStatus

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
    resource: Resource = "links"
    save_data: StrictBool | None = Field(
        None, description="Sent on a data resource's resume; ignored for links, whose resume has none"
    )
    external_ref: Annotated[str, StringConstraints(max_length=200)] | None = None
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


class RegisterLinkBody(BaseModel):
    """`POST /v1/links`: Belvo's register fields; usernames and secrets are SecretStr: no repr shows them."""

    model_config = ConfigDict(extra="forbid")
    institution: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,100}$")]
    username: Secret
    password: Secret
    username2: Secret | None = None
    username3: Secret | None = None
    password2: Secret | None = None
    username_type: Annotated[str, StringConstraints(max_length=10)] | None = None
    certificate: Pem | None = None
    private_key: Pem | None = None
    access_mode: Literal["single", "recurrent"] | None = None
    external_id: Annotated[str, StringConstraints(max_length=256)] | None = None
    fetch_resources: (
        Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=20)] | None
    ) = None
    external_ref: Annotated[str, StringConstraints(max_length=200)] | None = None
    callback_url: CallbackUrl | None = None

    def belvo_fields(self) -> dict[str, Any]:
        """The body Belvo's register call takes, secrets revealed: only for sealing, never for logs."""
        out: dict[str, Any] = {}
        for name, value in self:
            if value is None or name in ("external_ref", "callback_url"):
                continue
            out[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return out


class RetrievalBody(BaseModel):
    """`POST /v1/retrievals`: a data resource, the link, and the resource's own fields (sent as given)."""

    model_config = ConfigDict(extra="allow")
    resource: DataResource
    link: UUID
    date_from: IsoDate | None = None
    date_to: IsoDate | None = Field(None, description="Not before date_from")
    save_data: StrictBool | None = None
    external_ref: Annotated[str, StringConstraints(max_length=200)] | None = None
    callback_url: CallbackUrl | None = None

    @field_validator("date_to")
    @classmethod
    def _ordered(cls, value: date | None, info: Any) -> date | None:
        start = info.data.get("date_from")
        if value is not None and start is not None and value < start:
            raise ValueError("date_to must not be before date_from")
        return value

    def belvo_fields(self) -> dict[str, Any]:
        """The body Belvo's data call takes (`resource` and our `external_ref`, `callback_url` left out)."""
        return self.model_dump(
            mode="json", exclude={"resource", "external_ref", "callback_url"}, exclude_none=True
        )


class StartedSessionOut(CreatedSessionOut):
    """A session whose first call to Belvo is on its way (status registering or retrieving)."""

    status: SessionStatus
