"""Belvo's webhooks in, link events out: the intake Belvo calls, and the backend's read of a link's events.

The intake is on only when BELVO_WEBHOOK_AUTHORIZATION is set (404 otherwise, as a route that does not
exist): Belvo's dashboard sends that exact Authorization header with every webhook, and it is compared
in constant time. Each webhook is recorded once, however often Belvo delivers it (mfa/links.py), and, in
the transaction that records it, announced to the backend as our own webhook event `link.<webhook_code>`
(WEBHOOK_URL, mfa/outbox.py): the backend hears of a link needing its user exactly once per webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

from flask import Blueprint, Response, jsonify, request
from redis.client import Pipeline

from app.auth import require_api_key
from app.errors import ApiError
from app.link_bodies import BelvoWebhookBody, LinkEventsOut, WebhookReceivedOut, link_uuid
from app.openapi import documented
from app.services import services
from app.validation import parse_body
from mfa.clock import now_ms
from mfa.links import LinkEvent, LinkEvents

log = logging.getLogger(__name__)
bp = Blueprint("link_events", __name__, url_prefix="/v1")


def link_event_type(webhook_code: str) -> str:
    """Our webhook event's type for a Belvo webhook: `link.` and Belvo's code (link.token_required)."""
    return "link." + (re.sub(r"[^a-z0-9_]", "_", webhook_code.lower()) or "unknown")


def _announce(pipe: Pipeline, event: LinkEvent) -> None:
    """Within the recording transaction: our own webhook event for the backend, when WEBHOOK_URL is set."""
    svc = services()
    url = svc.settings.webhooks.url
    data = {k: v for k, v in event.public().items() if k != "id"}  # the stream id exists only once committed
    svc.outbox.add(
        pipe,
        event="evt_link_" + hashlib.sha256(event.webhook_id.encode()).hexdigest()[:32],
        event_type=link_event_type(event.webhook_code),
        data=data,
        destinations=(url,) if url else (),
        now_ms=event.received_at_ms,
    )


def _link_events() -> LinkEvents:
    svc = services()
    return LinkEvents(svc.redis, svc.settings.link_events_retention_seconds)


def _require_belvo() -> None:
    """Belvo's webhook credential, compared in constant time; the route is off while none is configured."""
    expected = services().settings.belvo_webhook_authorization
    if not expected:
        raise ApiError(
            404, "not_found", "Not Found", "Belvo webhooks are not enabled (BELVO_WEBHOOK_AUTHORIZATION)."
        )
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "Authentication required",
            "The webhook's Authorization is not the configured one.",
        )


@bp.post("/belvo/webhooks")
@documented(
    "Belvo's webhooks (configured in Belvo's dashboard): each recorded once as an event of its link",
    body=BelvoWebhookBody,
    responses={200: WebhookReceivedOut, 400: None, 401: None, 404: None, 413: None, 422: None, 503: None},
    auth="belvoWebhook",
)
def receive_webhook() -> Response:
    _require_belvo()
    body = parse_body(BelvoWebhookBody)
    if body.link_id is None:
        log.info(
            "Belvo webhook %s (%s %s) names no link: not recorded",
            body.webhook_id,
            body.webhook_type,
            body.webhook_code,
        )
        return jsonify({"webhook_id": body.webhook_id, "recorded": False, "duplicate": False, "event": None})
    event = LinkEvent(
        webhook_id=body.webhook_id,
        webhook_type=body.webhook_type,
        webhook_code=body.webhook_code,
        link_id=str(body.link_id),
        external_id=body.external_id,
        request_id=body.request_id,
        process_type=body.process_type,
        data=body.data,
    )
    recorded = _link_events().record(event, now_ms(), also=_announce)
    log.info(
        "Belvo webhook %s: %s %s for link %s%s",
        body.webhook_id,
        body.webhook_type,
        body.webhook_code,
        event.link_id,
        " (a redelivery: recorded before)" if recorded.duplicate else "",
    )
    return jsonify(
        {
            "webhook_id": body.webhook_id,
            "recorded": True,
            "duplicate": recorded.duplicate,
            "event": recorded.event.id,
        }
    )


@bp.get("/links/<link_id>/events")
@documented(
    "The Belvo webhooks received for a link, oldest first (e.g. token_required: it needs the user again)",
    responses={200: LinkEventsOut, 401: None, 404: None, 503: None},
)
def link_events(link_id: str) -> Response:
    require_api_key()
    link = link_uuid(link_id)
    return jsonify({"link": link, "events": [e.public() for e in _link_events().for_link(link)]})
