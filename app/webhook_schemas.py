"""The shapes of the webhook event and look-up routes (app/webhooks.py), published in the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.schemas import SessionOut
from mfa.lookups import CURSOR_PATTERN

Limit = Annotated[int, Field(ge=1, le=100, description="Items per page (default 20)")]
PageCursor = Annotated[
    str, StringConstraints(pattern=CURSOR_PATTERN), Field(description="`next_cursor` of the previous page")
]


class EventsQuery(BaseModel):
    """`GET /v1/events`."""

    model_config = ConfigDict(extra="forbid")  # an unknown parameter (a typo, an empty name) is a 422

    status: Literal["pending", "delivered", "failed"] = Field(
        description="failed: a destination refused it or its retries are spent; pending: on its way"
    )
    limit: Limit = 20
    cursor: PageCursor | None = None


class SessionsQuery(BaseModel):
    """`GET /v1/sessions`: sessions by the backend's own reference."""

    model_config = ConfigDict(extra="forbid")

    external_ref: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    limit: Limit = 20
    cursor: PageCursor | None = None


class AttemptOut(BaseModel):
    """One delivery attempt: when, and the receiver's HTTP status or the error."""

    at: str
    http_status: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    """An event's delivery to one destination."""

    url: str
    status: Literal["pending", "delivered", "failed"]
    next_attempt_at: str | None = Field(description="When the next attempt is due, while a retry waits")
    attempts: list[AttemptOut]


class EventOut(BaseModel):
    """A webhook event, its payload's data and its deliveries."""

    id: str = Field(description="Sent as webhook-id and as the payload's id; the same on every attempt")
    type: str
    created_at: str
    session_id: str | None
    sequence: int = Field(description="The session's version this event reports: orders its events")
    step: int
    status: Literal["pending", "delivered", "failed"]
    data: Any = Field(description="The payload's data: the session as the API key sees it")
    deliveries: list[DeliveryOut]


class EventListOut(BaseModel):
    """A page of events."""

    data: list[EventOut]
    next_cursor: str | None = None


class SessionListOut(BaseModel):
    """A page of sessions, newest first."""

    data: list[SessionOut]
    next_cursor: str | None
