"""Belvo's link routes: register, list (with Belvo's filters), read, change access mode, update, delete."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, request

from . import institutions, mfa
from .bodies import json_body, require
from .errors import BelvoError
from .state import Link, current_state, institution_user_id, utc_now

bp = Blueprint("links", __name__)

ACCESS_MODES = ("single", "recurrent")
# GET /api/links/ filters the sandbox applies (Belvo has more); exact match on the link's field.
LIST_FILTERS = ("external_id", "institution", "status", "access_mode", "id", "institution_user_id")


def access_mode_of(body: dict[str, Any], default: str) -> str:
    """A valid `access_mode` from the body, or the default when absent or null."""
    mode = body.get("access_mode") or default
    if mode not in ACCESS_MODES:
        raise BelvoError(400, "invalid_choice", f'"{mode}" is not a valid choice.', "access_mode")
    return mode


def stored_link(link_id: str) -> Link:
    """The stored link, or Belvo's 404."""
    link = current_state().get_link(link_id)
    if link is None:
        raise BelvoError(404, "not_found", "Not found")
    return link


def changed_link(link_id: str, **changes: Any) -> Link:
    """Apply changes to a stored link; 404 if it was deleted meanwhile."""
    link = current_state().update_link(link_id, **changes)
    if link is None:
        raise BelvoError(404, "not_found", "Not found")
    return link


@bp.get("/api/links/")
def list_links() -> dict[str, Any]:
    """Links in Belvo's paginated shape (a single page), filtered as Belvo's list is."""
    filters = {key: value for key, value in request.args.items() if key in LIST_FILTERS}
    links = [link.as_json() for link in current_state().list_links(filters)]
    return {"count": len(links), "next": None, "previous": None, "results": links}


@bp.post("/api/links/")
def register_link() -> Any:
    """Register a link: 201 when the bank logs in, 428 with a session when it asks for a token."""
    body = json_body()
    require(body, "institution", "username")
    institution = institutions.check_institution(body["institution"])
    access_mode = access_mode_of(body, "recurrent")  # Belvo's default
    username, password = str(body["username"]), body.get("password")
    external_id = body.get("external_id")
    if external_id is not None and len(str(external_id)) < 3:
        raise BelvoError(400, "min_length", "Ensure this field has at least 3 characters.", "external_id")
    mfa_type = institutions.login(institution, username, None if password is None else str(password))
    # A token sent with the registration itself answers the challenge up front.
    paused = mfa_type is not None and body.get("token") != mfa.TOKEN_COMPLETES
    state = current_state()
    link = state.add_link(
        Link(
            id=str(uuid.uuid4()),
            institution=institution,
            access_mode=access_mode,
            external_id=external_id,
            status="token_required" if paused else "valid",
            mfa_type=mfa_type,
            created_by=state.created_by,
            institution_user_id=institution_user_id(institution, username),
        )
    )
    if paused:
        return mfa.challenge_response(state, link, "links")
    return changed_link(link.id, last_accessed_at=link.created_at).as_json(), 201


@bp.get("/api/links/<link_id>/")
def get_link(link_id: str) -> Any:
    """One link, or 404."""
    return stored_link(link_id).as_json()


@bp.patch("/api/links/<link_id>/")
def change_access_mode(link_id: str) -> Any:
    """Change a link's `access_mode` (the SDK's `Links.patch`)."""
    current = stored_link(link_id)
    mode = access_mode_of(json_body(), current.access_mode)
    return changed_link(link_id, access_mode=mode).as_json()


@bp.put("/api/links/<link_id>/")
def update_credentials(link_id: str) -> Any:
    """Update a link's credentials (the SDK's `Links.update`): the bank logs in again with them.

    200 and `valid` when it logs in; a 428 resumed on `links` when its bank asks for a token (an MFA
    link always does); `400 login_error` for the guide's failed-login password. The username stays.
    """
    body = json_body()
    require(body, "password")
    link = stored_link(link_id)
    if body["password"] == institutions.FAILED_LOGIN[1]:
        changed_link(link_id, status="invalid")
        raise BelvoError(400, "login_error", "Invalid credentials provided to login to the institution")
    state = current_state()
    if link.mfa_type and body.get("token") != mfa.TOKEN_COMPLETES:
        changed_link(link_id, status="token_required")
        return mfa.challenge_response(state, link, "links")
    return changed_link(link_id, status="valid", last_accessed_at=utc_now()).as_json()


@bp.delete("/api/links/<link_id>/")
def delete_link(link_id: str) -> Any:
    """Delete a link: 204, or 404 when unknown."""
    if not current_state().delete_link(link_id):
        raise BelvoError(404, "not_found", "Not found")
    return "", 204
