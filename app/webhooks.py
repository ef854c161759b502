"""Webhook events and look-ups for the backend (API key): a session's events with their delivery
attempts, events by delivery status, redelivery, and sessions by external_ref. Also where a new
session's webhook destinations are decided (and a callback_url refused, with 422, if unsafe)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify

from app.auth import authorize_session, require_api_key
from app.errors import ApiError
from app.openapi import documented
from app.services import services
from app.validation import parse_query
from app.webhook_schemas import EventListOut, EventOut, EventsQuery, SessionListOut, SessionsQuery
from mfa.clock import now_ms
from mfa.destinations import UnsafeDestination
from mfa.lookups import Cursor, page_of, sessions_by_ref
from mfa.outbox import WebhookEvent
from mfa.session import Audience, rfc3339
from mfa.webhooks import DeliveryStatus

bp = Blueprint("webhooks", __name__, url_prefix="/v1")

_ERRORS = {401: None, 404: None, 503: None}


def destinations_for(callback_url: str | None) -> tuple[str, ...]:
    """Where a new session's webhook events go: WEBHOOK_URL, and its own callback_url once the policy
    (https, a public address after DNS resolution) accepts it; 422 otherwise."""
    settings = services().settings
    found = [settings.webhooks.url] if settings.webhooks.url else []
    if callback_url is not None:
        try:
            settings.destination_policy.check_destination(callback_url)
        except UnsafeDestination as exc:
            raise ApiError(
                422,
                "validation_error",
                "The request body is not valid",
                "See `errors`.",
                errors=[
                    {"field": "callback_url", "message": f"refused: {exc}", "type": "unsafe_destination"}
                ],
            ) from None
        if callback_url not in found:
            found.append(callback_url)
    return tuple(found)


def _views(events: list[WebhookEvent]) -> list[dict[str, Any]]:
    logged = services().outbox.attempts([e.id for e in events])
    return [_view(event, attempts) for event, attempts in zip(events, logged, strict=True)]


def _view(event: WebhookEvent, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    deliveries = [
        {
            "url": url,
            "status": event.states[i].value,
            "next_attempt_at": rfc3339(event.due_ms[i]),
            "attempts": [
                {key: a.get(key) for key in ("at", "http_status", "error", "duration_ms")}
                for a in attempts
                if a.get("destination") == i
            ],
        }
        for i, url in enumerate(event.destinations)
    ]
    return {
        "id": event.id,
        "type": event.type,
        "created_at": rfc3339(event.created_at_ms),
        "session_id": event.session_id,
        "sequence": event.sequence,
        "step": event.step,
        "status": event.status.value,
        "data": json.loads(event.body())["data"],
        "deliveries": deliveries,
    }


def _cursor(raw: str | None) -> Cursor | None:
    return Cursor.parse(raw) if raw is not None else None


@bp.get("/sessions/<session_id>/events")
@documented(
    "A session's webhook events, each with its delivery attempts", responses={200: EventListOut, **_ERRORS}
)
def session_events(session_id: str) -> Response:
    require_api_key()
    session = authorize_session()
    return jsonify(
        {"data": _views(services().outbox.session_events(session.id, session.version)), "next_cursor": None}
    )


@bp.get("/events")
@documented(
    "Webhook events by delivery status, newest first",
    query=EventsQuery,
    responses={200: EventListOut, 401: None, 422: None, 503: None},
)
def list_events() -> Response:
    require_api_key()
    query = parse_query(EventsQuery)
    outbox = services().outbox
    index = outbox.status_index(DeliveryStatus(query.status))
    events, cursor = page_of(outbox.redis, index, query.limit, _cursor(query.cursor), outbox.load_many)
    return jsonify({"data": _views(events), "next_cursor": cursor})


@bp.post("/events/<event_id>/redeliver")
@documented(
    "Deliver an event again, under the same id: to the destinations that failed, else to all",
    responses={202: EventOut, 409: None, **_ERRORS},
)
def redeliver_event(event_id: str) -> tuple[Response, int]:
    require_api_key()
    outbox = services().outbox
    started = outbox.redeliver(event_id, now_ms())
    event = outbox.load(event_id) if started is not None else None
    if event is None:
        raise ApiError(404, "event_not_found", "No such event")
    if started == 0:
        raise ApiError(409, "event_pending", "The event is already on its way to every destination")
    return jsonify(_views([event])[0]), 202


@bp.get("/sessions")
@documented(
    "Sessions created with an external_ref, newest first",
    query=SessionsQuery,
    responses={200: SessionListOut, 401: None, 422: None, 503: None},
)
def sessions_by_external_ref() -> Response:
    require_api_key()
    query = parse_query(SessionsQuery)
    svc, now = services(), now_ms()
    sessions, cursor = sessions_by_ref(svc.redis, query.external_ref, query.limit, _cursor(query.cursor))
    return jsonify({"data": [s.public(now, Audience.BACKEND) for s in sessions], "next_cursor": cursor})
