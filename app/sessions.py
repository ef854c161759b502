"""The /v1/sessions routes: create from a 428, read, submit the token, cancel."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from app.auth import authorize_session, new_client_secret, require_api_key
from app.dispatch import enqueue_step
from app.errors import ApiError
from app.idempotency import run_idempotent
from app.models import SessionStatus
from app.openapi import documented
from app.schemas import CreatedSessionOut, CreateSessionBody, SessionOut, TokenBody
from app.services import now_ms, services
from app.validation import parse_body, read_json

bp = Blueprint("sessions", __name__, url_prefix="/v1/sessions")

_SESSION_ERRORS = {401: None, 404: None, 429: None, 503: None}


@bp.post("")
@documented(
    "Store a session paused by Belvo's 428",
    body=CreateSessionBody,
    responses={201: CreatedSessionOut, 400: None, 409: None, 413: None, 422: None, **_SESSION_ERRORS},
)
def create_session() -> tuple[Response, int, dict[str, str]]:
    svc = services()
    require_api_key(svc.settings.api_keys)
    body = parse_body(CreateSessionBody)
    pause = body.pause
    tgd = pause.token_generation_data
    secret, secret_hash = new_client_secret()
    now = now_ms()
    session = svc.store.create(
        belvo_session=pause.session,
        link=str(pause.link),
        expiry_seconds=pause.expiry,
        challenge=tgd.model_dump(mode="json") if tgd is not None else None,
        resource=body.resource,
        save_data=body.save_data,
        external_ref=body.external_ref,
        secret_hash=secret_hash,
        now_ms=now,
    )
    return (
        jsonify({**session.public(now), "client_secret": secret}),
        201,
        {"Location": f"{bp.url_prefix}/{session.id}"},
    )


@bp.get("/<session_id>")
@documented("Read a session", responses={200: SessionOut, **_SESSION_ERRORS})
def read_session(session_id: str) -> Response:
    svc = services()
    session = authorize_session(svc.store, session_id, svc.settings.api_keys)
    now = now_ms()
    if session.status is SessionStatus.AWAITING_TOKEN and session.is_past_expiry(now):
        svc.store.expire_due(session_id, now)  # make what the reader sees durable
    return jsonify(session.public(now))


@bp.post("/<session_id>/token")
@documented(
    "Submit the end user's MFA token; the resume is sent to Belvo once",
    body=TokenBody,
    responses={202: SessionOut, 400: None, 409: None, 410: None, 413: None, 422: None, **_SESSION_ERRORS},
    headers={"Idempotency-Key": "Replays the first answer for the same key (kept 24 h)"},
)
def submit_token(session_id: str) -> Response:
    svc = services()
    session = authorize_session(svc.store, session_id, svc.settings.api_keys)
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

    def submit() -> Response:
        now = now_ms()
        submitted = svc.store.submit_token(
            session_id,
            body.token,
            now,
            lambda pipe, s: enqueue_step(svc.queue, svc.settings, pipe, s, now_ms=now),
            seen=session,
        )
        resp = jsonify(submitted.public(now))
        resp.status_code = 202
        return resp

    return run_idempotent(
        svc.redis,
        key=request.headers.get("Idempotency-Key"),
        scope=f"token:{session_id}",
        session_id=session_id,
        payload=payload if isinstance(payload, dict) else {},
        retention_seconds=svc.settings.idempotency_retention_seconds,
        handler=submit,
    )


@bp.post("/<session_id>/cancel")
@documented("Cancel a session awaiting its token", responses={200: SessionOut, 409: None, **_SESSION_ERRORS})
def cancel_session(session_id: str) -> Response:
    svc = services()
    authorize_session(svc.store, session_id, svc.settings.api_keys)
    now = now_ms()
    return jsonify(svc.store.cancel(session_id, now).public(now))
