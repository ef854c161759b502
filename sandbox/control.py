"""The `/_sandbox` control API for tests and benchmarks: no auth, loopback callers only."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from flask import Blueprint, request

from . import mfa, webhooks
from .config import validate_tunables
from .data import RESUMABLE
from .errors import InvalidControlRequest
from .faults import parse_fault
from .state import Link, current_state, institution_user_id

bp = Blueprint("control", __name__, url_prefix="/_sandbox")

CALL_FILTERS = ("session", "link", "resource", "kind", "method", "path", "status")


@bp.before_request
def _loopback_only() -> Any:
    if not current_state().config["control_loopback_only"]:
        return None
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return {"error": "the control API only answers loopback callers"}, 403
    return None


def control_body() -> dict[str, Any]:
    """The JSON object sent to a control endpoint (`{}` when empty)."""
    if not request.get_data():
        return {}
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise InvalidControlRequest("expected a JSON object")
    return body


@bp.get("/health")
def health() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


@bp.post("/sessions")
def create_session() -> Any:
    """Open a paused session without a register call; answer the 428 body Belvo would send."""
    body = control_body()
    resource = body.get("resource", "links")
    if resource not in RESUMABLE:
        raise InvalidControlRequest(f"resource must be one of {list(RESUMABLE)}")
    token_type = body.get("token_type", "numeric")
    if token_type not in mfa.TOKEN_TYPES:
        raise InvalidControlRequest(f"token_type must be one of {list(mfa.TOKEN_TYPES)}")
    expiry = body.get("expiry")
    if expiry is not None and (
        isinstance(expiry, bool) or not isinstance(expiry, (int, float)) or expiry <= 0
    ):
        raise InvalidControlRequest("expiry must be a number of seconds > 0")
    link_id = _link_id(body.get("link"))
    state = current_state()
    if state.get_link(link_id) is None:
        state.save_link(
            Link(
                id=link_id,
                institution="heimdall_mx_retail",
                access_mode="single",
                external_id=None,
                # A paused registration leaves the link unconfirmed; a paused data call does not.
                status="token_required" if resource == "links" else "valid",
                mfa_type=token_type,
                created_by=state.created_by,
                institution_user_id=institution_user_id("heimdall_mx_retail", link_id),
            )
        )
    return mfa.open_challenge(state, link_id, resource, token_type, expiry)


def _link_id(value: Any) -> str:
    if value is None:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidControlRequest("link must be a UUID") from None


@bp.post("/webhooks")
def send_webhook() -> Any:
    """Send Belvo's LINK webhook for a link to a loopback URL (sandbox/webhooks.py)."""
    return webhooks.send(control_body())


@bp.post("/faults")
def add_fault() -> Any:
    """Queue a fault for the next matching upstream calls."""
    fault = parse_fault(control_body())
    state = current_state()
    state.add_fault(fault)
    return {"fault": fault.id, "pending": state.pending_faults()}, 201


@bp.get("/faults")
def list_faults() -> Any:
    """The faults still queued, oldest first."""
    return current_state().pending_faults()


@bp.delete("/faults")
def clear_faults() -> Any:
    """Drop every queued fault."""
    current_state().clear_faults()
    return "", 204


@bp.get("/config")
def get_config() -> dict[str, Any]:
    """The tunable settings."""
    return current_state().tunables()


@bp.put("/config")
def put_config() -> dict[str, Any]:
    """Change some tunable settings; the others keep their values."""
    return current_state().update_config(validate_tunables(control_body()))


@bp.get("/calls")
def list_calls() -> Any:
    """Every upstream call so far, in arrival order, filtered by exact query values."""
    filters = {key: value for key, value in request.args.items() if key in CALL_FILTERS}
    unknown = set(request.args) - set(CALL_FILTERS)
    if unknown:
        raise InvalidControlRequest(f"unknown filters {sorted(unknown)}; use {list(CALL_FILTERS)}")
    return current_state().find_calls(filters)


@bp.post("/reset")
def reset() -> dict[str, Any]:
    """Forget links, sessions, faults and calls; restore the start-up settings."""
    state = current_state()
    state.reset()
    return {"reset": True, "config": state.tunables()}
