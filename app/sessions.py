"""The /v1/sessions routes: create from a 428, read (or long-poll: mfa/live.py), submit the token, cancel."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError

from app.auth import (
    authorize_session,
    bearer_credential,
    current_principal,
    new_client_secret,
    require_api_key,
)
from app.errors import ApiError, validation_error
from app.idempotency import run_idempotent
from app.openapi import documented
from app.schemas import CreatedSessionOut, CreateSessionBody, LongPollQuery, SessionOut, TokenBody
from app.services import Services, services
from app.validation import parse_body, read_json
from app.webhooks import destinations_for
from mfa.clock import now_ms
from mfa.live import wait_for_change
from mfa.sealing import Unsealable
from mfa.session import Audience, MfaSession, NewSession, SessionStatus

bp = Blueprint("sessions", __name__, url_prefix="/v1/sessions")
log = logging.getLogger(__name__)

_SESSION_ERRORS = {401: None, 404: None, 429: None, 503: None}


@bp.post("")
@documented(
    "Store a session paused by Belvo's 428",
    body=CreateSessionBody,
    responses={201: CreatedSessionOut, 400: None, 409: None, 413: None, 422: None, **_SESSION_ERRORS},
)
def create_session() -> tuple[Response, int, dict[str, str]]:
    require_api_key()
    body = parse_body(CreateSessionBody)
    pause = body.token_required
    destinations = destinations_for(body.callback_url)
    secret, secret_hash = new_client_secret()
    now = now_ms()
    session = services().store.create(
        NewSession(
            status=SessionStatus.AWAITING_TOKEN,
            resource=body.resource,
            secret_hash=secret_hash,
            expiry_seconds=pause.expiry_or(services().settings.default_mfa_expiry_seconds),
            link=str(pause.link),
            external_ref=body.external_ref,
            belvo_session=pause.session,
            challenge=pause.challenge(),
            save_data=body.save_data,
            webhooks=destinations,
        ),
        now,
    )
    return (
        jsonify({**session.public(now), "client_secret": secret}),
        201,
        {"Location": f"{bp.url_prefix}/{session.id}"},
    )


@bp.get("/<session_id>")
@documented(
    "Read a session; with `wait`, once it changes (a long-poll)",
    responses={200: SessionOut, 422: None, **_SESSION_ERRORS},
    query=LongPollQuery,
)
def read_session(session_id: str) -> Response:
    session = long_poll(authorize_session())
    now = now_ms()
    if session.reads_expired(now):
        services().store.expire_due(session_id, now)  # make what the reader sees durable
    audience = current_principal().audience
    if audience is Audience.BACKEND and session.status.is_final:  # a failed one may list what it found
        session = with_result(session)
    return jsonify(session.public(now, audience))


def long_poll(session: MfaSession) -> MfaSession:
    """The session as the request's `wait`/`after` ask for it (mfa/live.py); at once without `wait`."""
    if not request.query_string:  # the common read asks for nothing: no query to parse
        return session
    try:
        query = LongPollQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise validation_error(exc) from None
    if not query.wait:
        return session
    svc = services()
    after = session.version if query.after is None else query.after
    return wait_for_change(svc.store, svc.feed, session, after, query.wait)


def with_result(session: MfaSession, svc: Services | None = None) -> MfaSession:
    """The session with Belvo's result in its outcome, opened from its own key: for API keys only.
    `svc` where there is no app context (a stream's events are made after the view returned)."""
    svc = svc or services()
    stored = svc.store.stored_result(session.id)
    if stored is None or session.outcome is None:
        return session
    try:
        result = json.loads(svc.results.read(stored))
    except Unsealable as exc:  # a key missing from RESULT_PRIVATE_KEYS: the outcome shows without it
        log.error("session %s: the stored result could not be opened: %s", session.id, exc)
        return session
    return replace(session, outcome={**session.outcome, "result": result})


@bp.post("/<session_id>/token")
@documented(
    "Submit the end user's MFA token; the resume is sent to Belvo once",
    body=TokenBody,
    responses={202: SessionOut, 400: None, 409: None, 410: None, 413: None, 422: None, **_SESSION_ERRORS},
    headers={"Idempotency-Key": "Replays the first answer for the same key (kept 24 h)"},
)
def submit_token(session_id: str) -> Response:
    svc = services()
    session = authorize_session()
    payload = read_json()
    body = TokenBody.model_validate(payload)
    if body.token is None and session.expects_user_input:
        raise ApiError(
            422,
            "validation_error",
            "The request body is not valid",
            "See `errors`.",
            errors=[{"field": "token", "message": "Field required", "type": "missing"}],
        )

    # Sealed before it reaches Redis (and so the AOF): only the worker's private key opens it.
    token = svc.secrets.store(body.token.encode()) if body.token and session.expects_user_input else None

    def submit() -> Response:
        now = now_ms()
        submitted = svc.store.submit_token(session_id, token, now, seen=session)
        resp = jsonify(submitted.public(now, current_principal().audience))
        resp.status_code = 202
        return resp

    return run_idempotent(
        svc.redis,
        key=request.headers.get("Idempotency-Key"),
        scope=f"token:{session_id}",
        session_id=session_id,
        credential=bearer_credential() or "",
        payload=payload if isinstance(payload, dict) else {},
        retention_seconds=svc.settings.idempotency_retention_seconds,
        handler=submit,
    )


@bp.post("/<session_id>/cancel")
@documented("Cancel a session awaiting its token", responses={200: SessionOut, 409: None, **_SESSION_ERRORS})
def cancel_session(session_id: str) -> Response:
    authorize_session()
    now = now_ms()
    return jsonify(services().store.cancel(session_id, now).public(now, current_principal().audience))
