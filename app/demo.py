"""The demo at `/` for `make dev` (DEMO_PAGE=true; off by default): a page that plays the backend's part.

The browser asks POST /demo/sessions for a scenario; this module registers a sandbox link through the
service's own POST /v1/links with the first API key, dispatched inside this process, so the key never
leaves the server; the page gets the session id and client secret, as a frontend gets them from its
backend, and opens the widget in an iframe.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from app.errors import ApiError
from app.frontend import content_security_policy, page
from app.services import services

bp = Blueprint("demo", __name__)

# The sandbox's credentials (Belvo's own sandbox has all but `mfa_approval`) and the challenge each meets.
SCENARIOS: dict[str, dict[str, str]] = {
    "numeric": {"username": "mfa_numeric", "password": "numeric_code"},
    "qr_code": {"username": "mfa_qr", "password": "qr_code"},
    "device": {"username": "mfa_default", "password": "pass_valid"},
    "approval": {"username": "mfa_approval", "password": "pass_valid"},
}
INSTITUTION = "heimdall_mx_retail"


@bp.before_request
def _only_when_enabled() -> None:
    if not services().settings.demo_page:
        abort(404)


@bp.get("/")
def demo_page() -> Response:
    """The demo: pick a challenge, watch the widget run it, see what it posts to its parent."""
    policy = content_security_policy(
        script_src="'self'",
        style_src="'self'",
        connect_src="'self'",
        frame_src="'self'",
        frame_ancestors="'none'",
    )
    return page(render_template("demo.html", scenarios=list(SCENARIOS)), policy)


@bp.post("/demo/sessions")
def start_demo_session() -> tuple[Response, int]:
    """Register a sandbox link for the scenario; answer only what a backend hands its frontend."""
    # Only the demo page itself may ask: a cross-site form cannot send JSON, nor can it hide its origin.
    if request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin" or not request.is_json:
        raise ApiError(403, "forbidden", "Forbidden", "Only the demo page starts demo sessions.")
    body: Any = request.get_json(silent=True)
    scenario = body.get("scenario") if isinstance(body, dict) else None
    if scenario not in SCENARIOS:
        raise ApiError(422, "validation_error", "Unknown scenario", f"Pick one of {', '.join(SCENARIOS)}.")
    # Dispatched in this process, not over HTTP: the service does not know its public address, and one
    # taken from the request's Host header could send the API key anywhere. The inner request gets an
    # app context (and `g`) of its own, so the two requests' log bindings never mix.
    with current_app.app_context():
        answer = current_app.test_client().post(
            "/v1/links",
            headers={"Authorization": f"Bearer {services().settings.api_keys[0]}"},
            json={"institution": INSTITUTION, **SCENARIOS[scenario], "external_ref": f"demo-{scenario}"},
        )
    started = answer.get_json()
    if answer.status_code != 202:
        return jsonify(started), answer.status_code
    return jsonify({"session": started["id"], "secret": started["client_secret"]}), 201
