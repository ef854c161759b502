"""Routes that start the flow in the service: link registration and data retrieval."""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify

from app.auth import new_client_secret, require_api_key
from app.errors import ApiError
from app.openapi import documented
from app.schemas import RegisterLinkBody, RetrievalBody, StartedSessionOut
from app.services import services
from app.validation import parse_body
from app.webhooks import destinations_for
from mfa.clock import now_ms
from mfa.session import NewSession, SessionStatus

bp = Blueprint("flows", __name__, url_prefix="/v1")

_ERRORS = {400: None, 401: None, 404: None, 413: None, 422: None, 429: None, 503: None}


def _start(new: NewSession, secret: str) -> tuple[Response, int, dict[str, str]]:
    """Store the session with its first call's job; answer it with its client secret."""
    now = now_ms()
    session = services().store.create(new, now)
    body = {**session.public(now), "client_secret": secret}
    return jsonify(body), 202, {"Location": f"/v1/sessions/{session.id}"}


@bp.post("/links")
@documented(
    "Register a link at Belvo; the session pauses for MFA if the bank asks",
    body=RegisterLinkBody,
    responses={202: StartedSessionOut, **_ERRORS},
)
def register_link() -> tuple[Response, int, dict[str, str]]:
    require_api_key()
    svc = services()
    settings = svc.settings
    if not settings.links_enabled or not svc.secrets.seals:
        raise ApiError(
            404,
            "links_disabled",
            "Link registration is not enabled",
            "Set the sealing keys (and LINKS_ENABLED) to let this service hold bank credentials.",
        )
    body = parse_body(RegisterLinkBody)
    destinations = destinations_for(body.callback_url)
    secret, secret_hash = new_client_secret()
    new = NewSession(
        status=SessionStatus.REGISTERING,
        resource="links",
        secret_hash=secret_hash,
        expiry_seconds=settings.call_deadline_seconds,
        external_ref=body.external_ref,
        sealed_credentials=svc.secrets.store(json.dumps(body.belvo_fields(), separators=(",", ":")).encode()),
        webhooks=destinations,
    )
    return _start(new, secret)


@bp.post("/retrievals")
@documented(
    "Retrieve a link's data from Belvo; the session pauses for MFA if the bank asks",
    body=RetrievalBody,
    responses={202: StartedSessionOut, **_ERRORS},
)
def start_retrieval() -> tuple[Response, int, dict[str, str]]:
    require_api_key()
    body = parse_body(RetrievalBody)
    destinations = destinations_for(body.callback_url)
    secret, secret_hash = new_client_secret()
    new = NewSession(
        status=SessionStatus.RETRIEVING,
        resource=body.resource,
        secret_hash=secret_hash,
        expiry_seconds=services().settings.call_deadline_seconds,
        link=str(body.link),
        external_ref=body.external_ref,
        save_data=body.save_data,
        request=body.belvo_fields(),
        webhooks=destinations,
    )
    return _start(new, secret)
