"""Routes that start the flow in the service: link registration, data retrieval, a link's new credentials."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify

from app.auth import new_client_secret, require_api_key
from app.errors import ApiError
from app.link_bodies import RegisterLinkBody, UpdateLinkBody, link_uuid
from app.openapi import documented
from app.retrieval_bodies import RetrievalBody, parse_retrieval
from app.schemas import StartedSessionOut
from app.services import services
from app.validation import parse_body, read_json
from app.webhooks import destinations_for
from mfa.clock import now_ms
from mfa.session import NewSession, SessionStatus, new_session_id

bp = Blueprint("flows", __name__, url_prefix="/v1")

_ERRORS = {400: None, 401: None, 404: None, 413: None, 422: None, 429: None, 503: None}


def _start(new: NewSession, secret: str) -> tuple[Response, int, dict[str, str]]:
    """Store the session with its first call's job; answer it with its client secret."""
    now = now_ms()
    session = services().store.create(new, now)
    body = {**session.public(now), "client_secret": secret}
    return jsonify(body), 202, {"Location": f"/v1/sessions/{session.id}"}


def _require_links() -> None:
    """404 while the service may not hold bank credentials (they are only ever stored sealed)."""
    svc = services()
    if not svc.settings.links_enabled or not svc.secrets.seals:
        raise ApiError(
            404,
            "links_disabled",
            "Link registration is not enabled",
            "Set the sealing keys (and LINKS_ENABLED) to let this service hold bank credentials.",
        )


def _sealed(fields: dict[str, Any]) -> bytes:
    """Bank credentials as stored: sealed to the worker (SEALING_PUBLIC_KEY)."""
    return services().secrets.store(json.dumps(fields, separators=(",", ":")).encode())


@bp.post("/links")
@documented(
    "Register a link at Belvo; the session pauses for MFA if the bank asks",
    body=RegisterLinkBody,
    responses={202: StartedSessionOut, **_ERRORS},
)
def register_link() -> tuple[Response, int, dict[str, str]]:
    require_api_key()
    _require_links()
    body = parse_body(RegisterLinkBody)
    destinations = destinations_for(body.callback_url)
    secret, secret_hash = new_client_secret()
    session_id = new_session_id()
    fields = body.belvo_fields()
    # The link can always be found at Belvo by the session that registered it: that is how a retry
    # after an answer that never came adopts the link instead of registering it twice.
    fields.setdefault("external_id", session_id)
    new = NewSession(
        status=SessionStatus.REGISTERING,
        resource="links",
        secret_hash=secret_hash,
        expiry_seconds=services().settings.call_deadline_seconds,
        external_ref=body.external_ref,
        sealed_credentials=_sealed(fields),
        id=session_id,
        webhooks=destinations,
    )
    return _start(new, secret)


@bp.post("/links/<link_id>/update")
@documented(
    "Re-authenticate a link: its credentials to Belvo again; the session pauses for MFA if the bank asks",
    body=UpdateLinkBody,
    responses={202: StartedSessionOut, **_ERRORS},
)
def update_link(link_id: str) -> tuple[Response, int, dict[str, str]]:
    require_api_key()
    link = link_uuid(link_id)
    _require_links()
    body = parse_body(UpdateLinkBody)
    secret, secret_hash = new_client_secret()
    new = NewSession(
        status=SessionStatus.UPDATING,
        resource="links",
        secret_hash=secret_hash,
        expiry_seconds=services().settings.call_deadline_seconds,
        link=link,
        external_ref=body.external_ref,
        sealed_credentials=_sealed(body.belvo_fields()),
        webhooks=destinations_for(body.callback_url),
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
    body = parse_retrieval(read_json())
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
