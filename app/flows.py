"""Routes that start the flow in the service: link registration and data retrieval."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.auth import new_client_secret, require_api_key
from app.credentials import CredentialVault
from app.dispatch import enqueue_step
from app.errors import ApiError
from app.models import SessionStatus
from app.openapi import documented
from app.schemas import RegisterLinkBody, RetrievalBody, StartedSessionOut
from app.services import Services, now_ms, services
from app.validation import parse_body

bp = Blueprint("flows", __name__, url_prefix="/v1")

_ERRORS = {400: None, 401: None, 404: None, 413: None, 422: None, 429: None, 503: None}


def _start(
    svc: Services,
    *,
    status: SessionStatus,
    resource: str,
    link: str | None,
    request: dict | None,
    sealed: bytes | None,
    external_ref: str | None,
) -> tuple[Response, int, dict[str, str]]:
    secret, secret_hash = new_client_secret()
    now = now_ms()
    session = svc.store.create_calling(
        status=status,
        resource=resource,
        link=link,
        request=request,
        encrypted_credentials=sealed,
        external_ref=external_ref,
        secret_hash=secret_hash,
        deadline_seconds=svc.settings.call_deadline_seconds,
        now_ms=now,
        enqueue=lambda pipe, s: enqueue_step(svc.queue, svc.settings, pipe, s, now_ms=now),
    )
    body = {**session.public(now), "client_secret": secret}
    return jsonify(body), 202, {"Location": f"/v1/sessions/{session.id}"}


@bp.post("/links")
@documented(
    "Register a link at Belvo; the session pauses for MFA if the bank asks",
    body=RegisterLinkBody,
    responses={202: StartedSessionOut, **_ERRORS},
)
def register_link() -> tuple[Response, int, dict[str, str]]:
    svc = services()
    require_api_key(svc.settings.api_keys)
    if not svc.settings.links_enabled:
        raise ApiError(
            404,
            "links_disabled",
            "Link registration is not enabled",
            "Set CREDENTIALS_KEY (and LINKS_ENABLED) to let this service hold bank credentials.",
        )
    body = parse_body(RegisterLinkBody)
    sealed = CredentialVault(svc.settings.credentials_key).seal(body.belvo_fields())
    return _start(
        svc,
        status=SessionStatus.REGISTERING,
        resource="links",
        link=None,
        request=None,
        sealed=sealed,
        external_ref=body.external_ref,
    )


@bp.post("/retrievals")
@documented(
    "Retrieve a link's data from Belvo; the session pauses for MFA if the bank asks",
    body=RetrievalBody,
    responses={202: StartedSessionOut, **_ERRORS},
)
def start_retrieval() -> tuple[Response, int, dict[str, str]]:
    svc = services()
    require_api_key(svc.settings.api_keys)
    body = parse_body(RetrievalBody)
    return _start(
        svc,
        status=SessionStatus.RETRIEVING,
        resource=body.resource,
        link=str(body.link),
        request=body.belvo_fields(),
        sealed=None,
        external_ref=body.external_ref,
    )
