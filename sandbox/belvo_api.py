"""Belvo's data routes: retrieve a resource for a link, and resume a paused session (PATCH).

The link routes (register, list, update, ...) live in sandbox/links.py.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from . import mfa
from .bodies import json_body, require
from .data import DATA_RESOURCES, RESUMABLE, generate
from .errors import BelvoError
from .state import Link, MfaSession, current_state, utc_now

bp = Blueprint("belvo_api", __name__)

# `any(...)` keeps unknown resources a 404 rather than a 405 from the POST/PATCH rules.
API_RESOURCES = "any({})".format(", ".join(f'"{name}"' for name in RESUMABLE if "/" not in name))
API_DATA = "any({})".format(", ".join(f'"{name}"' for name in DATA_RESOURCES if "/" not in name))


def save_data_flag(body: dict[str, Any]) -> bool:
    """`save_data`, default true."""
    value = body.get("save_data", True)
    if not isinstance(value, bool):
        raise BelvoError(400, "invalid", "Must be a valid boolean.", "save_data")
    return value


def existing_link(link_id: str, field: str = "link") -> Link:
    """The stored link, or Belvo's `does_not_exist` validation error."""
    link = current_state().get_link(link_id)
    if link is None:
        raise BelvoError(400, "does_not_exist", f'Invalid pk "{link_id}" - object does not exist.', field)
    return link


@bp.get("/api/")
def api_root() -> dict[str, str]:
    """The API index; the SDK GETs it with the secret keys to check them at login."""
    base = request.host_url.rstrip("/")
    return {resource: f"{base}/api/{resource}/" for resource in RESUMABLE if "/" not in resource}


@bp.post(f"/api/<{API_DATA}:resource>/")
def create(resource: str) -> Any:
    """POST on a data collection: retrieve the resource."""
    return retrieve(resource, json_body())


@bp.post("/investments/portfolios/")
def create_portfolios() -> Any:
    """Retrieve investment portfolios (outside `/api/`, as in Belvo)."""
    return retrieve("investments/portfolios", json_body())


@bp.patch(f"/api/<{API_RESOURCES}:resource>/")
def resume(resource: str) -> Any:
    """PATCH on a collection: answer a paused MFA session."""
    return resume_session(resource, json_body())


@bp.patch("/investments/portfolios/")
def resume_portfolios() -> Any:
    """Answer a paused portfolios retrieval (its body has no save_data)."""
    return resume_session("investments/portfolios", json_body())


def retrieve(resource: str, body: dict[str, Any]) -> Any:
    """Fetch a data resource; links of MFA banks pause every call unless it carries `111111`."""
    require(body, "link")
    save_data = save_data_flag(body)
    link = existing_link(body["link"])
    if link.status == "token_required":
        raise BelvoError(400, "unconfirmed_link", "The link creation has not been completed yet")
    if link.status == "invalid":
        raise BelvoError(
            400, "invalid_link", "The link has been invalidated. You may need to update link credentials"
        )
    state = current_state()
    if link.mfa_type and body.get("token") != mfa.TOKEN_COMPLETES:
        return mfa.challenge_response(state, link, resource)
    return data_response(resource, link.id, save_data, resumed=False)


def resume_session(resource: str, body: dict[str, Any]) -> Any:
    """Answer a paused session; 200/201 on completion, 428 for another step, 400 otherwise."""
    require(body, "session")
    save_data = save_data_flag(body) if resource not in ("links", "investments/portfolios") else True
    outcome = mfa.answer_session(current_state(), resource, body)
    if isinstance(outcome, Response):
        return outcome
    return completed(outcome, save_data)


def completed(session: MfaSession, save_data: bool) -> Any:
    """The answer to a session whose MFA step succeeded."""
    if session.resource != "links":
        return data_response(session.resource, session.link_id, save_data, resumed=True)
    link = current_state().update_link(session.link_id, status="valid", last_accessed_at=utc_now())
    if link is None:
        raise BelvoError(400, "invalid_link", "The link no longer exists")
    return link.as_json(), 200


def data_response(resource: str, link_id: str, save_data: bool, resumed: bool) -> Any:
    """The resource's data (a list, or the one object the spec gives): 201 when saved, 200 when not."""
    link = current_state().update_link(link_id, last_accessed_at=utc_now())
    if link is None:
        raise BelvoError(400, "invalid_link", "The link no longer exists")
    return generate(resource, link, resumed), 201 if save_data else 200
