"""Belvo's MFA pause (HTTP 428 `token_required`) and the rules for answering it."""

from __future__ import annotations

import math
from typing import Any

from flask import Response, jsonify

from .errors import BelvoError, new_request_id
from .state import Link, MfaSession, SandboxState

TOKEN_COMPLETES = "111111"
TOKEN_ASKS_AGAIN = "999999"

# The challenges a login or data call can pause with. `approval` is the sandbox's own (Belvo's guide
# has no such credentials): confirmed in the bank's app, so the resume PATCH carries no token.
TOKEN_TYPES = ("numeric", "qr_code", "device", "approval")


def _digits(session_id: str, count: int) -> str:
    return str(int(session_id[:12], 16) % 10**count).zfill(count)


def token_generation_data(token_type: str, session_id: str) -> dict[str, Any]:
    """What the user needs to produce (or skip) the token, in the shape Belvo's 428 carries it."""
    if token_type == "qr_code":
        return {
            "instructions": "Scan the QR code with your bank app and enter the code it shows",
            "type": "qr_code",
            # The data of the QR code: a frontend renders this string as the code to scan.
            "value": f"belvo-sandbox://mfa?session={session_id}&nonce={new_request_id()[:12]}",
            "expects_user_input": True,
        }
    if token_type == "device":
        return {
            "instructions": "Enter the code your bank's token device shows",
            "type": "device",
            "value": "",
            "expects_user_input": True,
        }
    if token_type == "approval":
        return {
            "instructions": "Approve the access in your bank app",
            "type": "approval",
            "value": "",
            "expects_user_input": False,
        }
    return {  # Belvo's spec example: a challenge code the user types into their token generator
        "instructions": "Use this code to generate the token",
        "type": "numeric",
        "value": _digits(session_id, 5),
        "expects_user_input": True,
    }


def token_required_body(
    session: MfaSession, shape: str, expiry_form: str = "integer"
) -> list[dict[str, Any]] | dict[str, Any]:
    """The 428 body: a one-element list (the spec) or a bare object (Belvo's samples); `expiry` an
    integer (the spec), a string of digits (Belvo's MFA guide) or left out."""
    # Belvo's expiry is whole seconds; a fractional test expiry is rounded up on the wire.
    expiry = max(1, math.ceil(session.expiry))
    item: dict[str, Any] = {
        "code": "token_required",
        "message": "A MFA token is required by the institution to login",
        "request_id": new_request_id(),
        "session": session.id,
        "expiry": str(expiry) if expiry_form == "string" else expiry,
        "link": session.link_id,
        "token_generation_data": token_generation_data(session.token_type, session.id),
    }
    if expiry_form == "absent":
        del item["expiry"]
    return [item] if shape == "list" else item


def open_challenge(
    state: SandboxState, link_id: str, resource: str, token_type: str, expiry: float | None = None
) -> list[dict[str, Any]] | dict[str, Any]:
    """Pause a call on `resource`: register a session and return the body announcing it."""
    seconds = state.config["session_expiry_seconds"] if expiry is None else expiry
    session = state.open_session(resource, link_id, token_type, seconds)
    config = state.config
    return token_required_body(session, config["token_required_shape"], config["token_required_expiry"])


def challenge_response(state: SandboxState, link: Link, resource: str) -> Response:
    """HTTP 428 for a call on an MFA link."""
    response = jsonify(open_challenge(state, link.id, resource, link.mfa_type or "numeric"))
    response.status_code = 428
    return response


def answer_session(state: SandboxState, resource: str, body: dict[str, Any]) -> MfaSession | Response:
    """Apply a resume PATCH: the completed session, or the 428 of the next MFA step.

    The session is consumed whatever the token, so a second answer gets `session_expired`.
    `111111` completes, `999999` asks again under a new session, anything else is rejected with the
    sandbox's `invalid_token` (Belvo names no code for a wrong token on these routes).
    """
    token = body.get("token")
    has_token = token not in (None, "")
    session = state.claim_session(body["session"], resource, body.get("link"), has_token)
    if not session.expects_user_input and not has_token:
        return session
    if token == TOKEN_COMPLETES:
        return session
    if token == TOKEN_ASKS_AGAIN:
        response = jsonify(open_challenge(state, session.link_id, resource, session.token_type))
        response.status_code = 428
        return response
    raise BelvoError(400, "invalid_token", "The MFA token is invalid")
