"""Bodies of the link routes: register, update credentials, Belvo's webhooks, and the link events read out.

The register and update bodies are Belvo's own (the spec's LinksRequest and LinksPutRequest), with
its constraints; usernames and secrets are SecretStr, so no repr or log shows them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictBool, StringConstraints, model_validator

from app.errors import ApiError
from app.schemas import CallbackUrl, ExternalRef, NoToken, Pem, Secret

# The spec's pattern ([a-z]+_[a-z]{2}_[a-z]+: name, country, kind, as in erebor_mx_retail), anchored.
Institution = Annotated[
    str, StringConstraints(max_length=100, pattern=r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*_[a-z]{2}_[a-z]+$")
]
Duration = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,3}d$")]  # Belvo's "30d", "365d"


class _Credentials(NoToken):
    """Fields a login takes, shared by register and update; certificate and private_key go together."""

    model_config = ConfigDict(extra="forbid")
    password2: Secret | None = None
    username_type: Annotated[str, StringConstraints(max_length=10)] | None = Field(
        None, description="The document used as username, by Belvo's code (e.g. 001); some banks require it"
    )
    certificate: Pem | None = Field(None, description="Base64; sent with private_key, never alone")
    private_key: Pem | None = Field(None, description="Base64; sent with certificate, never alone")
    external_ref: ExternalRef | None = None
    callback_url: CallbackUrl | None = None

    @model_validator(mode="after")
    def _certificate_pair(self) -> Any:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("certificate and private_key go together: send both or neither")
        return self

    def belvo_fields(self) -> dict[str, Any]:
        """The body Belvo's call takes, secrets revealed: only for sealing, never for logs."""
        out: dict[str, Any] = {}
        for name, value in self:
            if value is None or name in ("external_ref", "callback_url", "token"):
                continue
            out[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return out


class RegisterLinkBody(_Credentials):
    """`POST /v1/links`: Belvo's register body (the spec's LinksRequest), and our `external_ref`."""

    institution: Institution
    username: Secret
    password: Secret | None = Field(
        None, description="Every institution needs it except a few that log in otherwise (imss_mx_employment)"
    )
    username2: Secret | None = None
    username3: Secret | None = None
    access_mode: Literal["single", "recurrent"] | None = Field(
        None,
        description="Belvo's default when omitted: recurrent (refreshed by Belvo, re-authenticated here)",
    )
    external_id: Annotated[str, StringConstraints(min_length=3, max_length=256)] | None = Field(
        None,
        description="Your identifier for the link at Belvo (no personal data). When omitted the service "
        "sets the session's id, so the link can always be found again by the session that made it.",
    )
    credentials_storage: (
        Annotated[str, StringConstraints(pattern=r"^(?:store|nostore|[1-9][0-9]{0,3}d)$")] | None
    ) = Field(None, description="Belvo's default: store. A recurrent link (the default) must store them.")
    stale_in: Duration | None = Field(None, description="How long Belvo keeps the link's data, e.g. 365d")
    fetch_historical: StrictBool | None = Field(
        None, description="Belvo's default: false for single links; always true for recurrent ones"
    )
    fetch_resources: (
        Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=20)] | None
    ) = None

    @model_validator(mode="after")
    def _recurrent_links_store_credentials(self) -> Any:
        recurrent = self.access_mode in (None, "recurrent")
        if recurrent and self.credentials_storage not in (None, "store"):
            raise ValueError(
                "a recurrent link (Belvo's default access_mode) needs credentials_storage: store"
            )
        return self


class UpdateLinkBody(_Credentials):
    """`POST /v1/links/{link_id}/update`: Belvo's update body (the spec's LinksPutRequest)."""

    password: Secret = Field(description="The end user's password at the institution, new or unchanged")


class BelvoWebhookBody(BaseModel):
    """A webhook Belvo sends (its envelope); fields Belvo may add are accepted and not kept."""

    model_config = ConfigDict(extra="allow")
    webhook_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    webhook_type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    webhook_code: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    link_id: UUID | None = Field(None, description="Every aggregation webhook names its link")
    request_id: Annotated[str, StringConstraints(max_length=200)] | None = None
    external_id: Annotated[str, StringConstraints(max_length=256)] | None = None
    process_type: Annotated[str, StringConstraints(max_length=64)] | None = None
    data: Any = None


class WebhookReceivedOut(BaseModel):
    """What the intake answers Belvo (any 2xx is Belvo's "delivered")."""

    webhook_id: str
    recorded: bool = Field(description="False for a webhook that names no link: nothing to record")
    duplicate: bool = Field(description="True when this webhook_id was recorded before: not recorded again")
    event: str | None = Field(description="The link event's id")


class LinkEventOut(BaseModel):
    """One Belvo webhook about a link, as received."""

    id: str
    received_at: str
    webhook_id: str
    webhook_type: str
    webhook_code: str
    link_id: str
    external_id: str | None
    request_id: str | None
    process_type: str | None
    data: Any


class LinkEventsOut(BaseModel):
    """A link's events, oldest first."""

    link: str
    events: list[LinkEventOut]


def link_uuid(link_id: str) -> str:
    """A link id from a route's path: Belvo's ids are UUIDs, anything else names no link (404, as Belvo)."""
    try:
        return str(uuid.UUID(link_id))
    except ValueError:
        raise ApiError(404, "link_not_found", "No such link", "Belvo's link ids are UUIDs.") from None
