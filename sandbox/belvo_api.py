"""Belvo's routes: register and manage links, retrieve data, resume paused sessions."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, request

from . import mfa
from .data import GENERATORS, RESUMABLE
from .errors import BelvoError
from .state import Link, MfaSession, current_state, utc_now

bp = Blueprint("belvo_api", __name__)

INSTITUTION_PREFIXES = ("heimdall_", "gotham_")
ACCESS_MODES = ("single", "recurrent")

# `any(...)` keeps unknown resources a 404 rather than a 405 from the POST/PATCH rules.
API_RESOURCES = "any({})".format(", ".join(f'"{name}"' for name in RESUMABLE if "/" not in name))


def json_body() -> dict[str, Any]:
    """The request's JSON object; an empty body counts as `{}`."""
    if not request.get_data():
        return {}
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise BelvoError(400, "parse_error", "JSON parse error - expected a JSON object")
    return body


def require(body: dict[str, Any], *fields: str) -> None:
    """Raise Belvo's field error for the first missing, null or blank field."""
    for field in fields:
        if field not in body:
            raise BelvoError(400, "required", "This field is required.", field)
        if body[field] is None:
            raise BelvoError(400, "null", "This field may not be null.", field)
        if body[field] == "":
            raise BelvoError(400, "blank", "This field may not be blank.", field)


def save_data_flag(body: dict[str, Any]) -> bool:
    """`save_data`, default true."""
    value = body.get("save_data", True)
    if not isinstance(value, bool):
        raise BelvoError(400, "invalid", "Must be a valid boolean.", "save_data")
    return value


def access_mode_of(body: dict[str, Any], default: str) -> str:
    """A valid `access_mode` from the body, or the default when absent or null."""
    mode = body.get("access_mode") or default
    if mode not in ACCESS_MODES:
        raise BelvoError(400, "invalid_choice", f'"{mode}" is not a valid choice.', "access_mode")
    return mode


def changed_link(link_id: str, **changes: Any) -> Link:
    """Apply changes to a stored link; 404 if it was deleted meanwhile."""
    link = current_state().update_link(link_id, **changes)
    if link is None:
        raise BelvoError(404, "not_found", "Resource not found")
    return link


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


@bp.get("/api/links/")
def list_links() -> dict[str, Any]:
    """All links, in Belvo's paginated shape (a single page)."""
    links = [link.as_json() for link in current_state().list_links()]
    return {"count": len(links), "next": None, "previous": None, "results": links}


@bp.post(f"/api/<{API_RESOURCES}:resource>/")
def create(resource: str) -> Any:
    """POST on a collection: register a link, or retrieve a data resource."""
    if resource == "links":
        return register_link(json_body())
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
    """Answer a paused portfolios retrieval."""
    return resume_session("investments/portfolios", json_body())


def register_link(body: dict[str, Any]) -> Any:
    """Register a link: 201 without MFA, 428 with a session when the bank asks for a token."""
    require(body, "institution", "username", "password")
    institution = body["institution"]
    if not str(institution).startswith(INSTITUTION_PREFIXES):
        message = f'Object with name "{institution}" does not exist.'
        raise BelvoError(400, "does_not_exist", message, "institution")
    access_mode = access_mode_of(body, "single")
    credentials = (body["username"], body["password"])
    if credentials not in mfa.CREDENTIALS:
        message = "Invalid credentials provided to login to the institution"
        raise BelvoError(400, "invalid_credentials", message)
    state = current_state()
    mfa_type = mfa.CREDENTIALS[credentials]
    # A token sent with the registration itself answers the challenge up front.
    paused = mfa_type is not None and body.get("token") != mfa.TOKEN_COMPLETES
    link = Link(
        id=str(uuid.uuid4()),
        institution=institution,
        access_mode=access_mode,
        external_id=body.get("external_id"),
        status="token_required" if paused else "valid",
        mfa_type=mfa_type,
        created_by=state.created_by,
    )
    if not paused:
        link.last_accessed_at = link.created_at
    state.save_link(link)
    if paused:
        return mfa.challenge_response(state, link, "links")
    return link.as_json(), 201


def retrieve(resource: str, body: dict[str, Any]) -> Any:
    """Fetch a data resource; links of MFA banks pause every call unless it carries `111111`."""
    require(body, "link")
    save_data = save_data_flag(body)
    link = existing_link(body["link"])
    if link.status == "token_required":
        raise BelvoError(400, "unconfirmed_link", "The link has not completed its MFA registration")
    state = current_state()
    if link.mfa_type and body.get("token") != mfa.TOKEN_COMPLETES:
        return mfa.challenge_response(state, link, resource)
    return data_response(resource, link.id, save_data)


def resume_session(resource: str, body: dict[str, Any]) -> Any:
    """Answer a paused session; 200/201 on completion, 428 for another step, 400 otherwise."""
    require(body, "session")
    save_data = save_data_flag(body) if resource != "links" else True
    outcome = mfa.answer_session(current_state(), resource, body)
    if isinstance(outcome, Response):
        return outcome
    return completed(outcome, save_data)


def completed(session: MfaSession, save_data: bool) -> Any:
    """The answer to a session whose MFA step succeeded."""
    if session.resource != "links":
        return data_response(session.resource, session.link_id, save_data)
    link = current_state().update_link(session.link_id, status="valid", last_accessed_at=utc_now())
    if link is None:
        raise BelvoError(400, "invalid_link", "The link no longer exists")
    return link.as_json(), 200


def data_response(resource: str, link_id: str, save_data: bool) -> Any:
    """The resource's list: 201 when saved, 200 when `save_data` is false."""
    link = current_state().update_link(link_id, last_accessed_at=utc_now())
    if link is None:
        raise BelvoError(400, "invalid_link", "The link no longer exists")
    return GENERATORS[resource](link), 201 if save_data else 200


@bp.get("/api/links/<link_id>/")
def get_link(link_id: str) -> Any:
    """One link, or 404."""
    link = current_state().get_link(link_id)
    if link is None:
        raise BelvoError(404, "not_found", "Resource not found")
    return link.as_json()


@bp.patch("/api/links/<link_id>/")
def change_access_mode(link_id: str) -> Any:
    """Change a link's `access_mode` (the SDK's `Links.patch`)."""
    body = json_body()
    current = current_state().get_link(link_id)
    if current is None:
        raise BelvoError(404, "not_found", "Resource not found")
    mode = access_mode_of(body, current.access_mode)
    return changed_link(link_id, access_mode=mode).as_json()


@bp.put("/api/links/<link_id>/")
def update_credentials(link_id: str) -> Any:
    """Update a link's password: MFA banks pause it with a 428 resumed on `links`."""
    body = json_body()
    require(body, "password")
    state = current_state()
    link = state.get_link(link_id)
    if link is None:
        raise BelvoError(404, "not_found", "Resource not found")
    if link.mfa_type and body.get("token") != mfa.TOKEN_COMPLETES:
        return mfa.challenge_response(state, link, "links")
    return changed_link(link_id, status="valid", last_accessed_at=utc_now()).as_json()


@bp.delete("/api/links/<link_id>/")
def delete_link(link_id: str) -> Any:
    """Delete a link: 204, or 404 when unknown."""
    if not current_state().delete_link(link_id):
        raise BelvoError(404, "not_found", "Resource not found")
    return "", 204
