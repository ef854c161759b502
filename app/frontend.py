"""The browser side of the service: the MFA widget page, the API document viewer and the static files.

Pages set their own Content-Security-Policy; every other header comes from the factory's defaults
(app/__init__.py), and the API routes keep their strict policy (`default-src 'none'`, no framing).

  /widget          the drop-in MFA widget (`#session=…&secret=…`: the secret stays in the fragment, which
                   no browser sends to a server or in a Referer). Framable by the service's own pages and
                   by the origins in WIDGET_FRAME_ANCESTORS, to which it posts its end state.
  /docs            the OpenAPI document (/openapi.json) in Swagger UI, vendored under static/vendor/.
  /static/<file>   app/static/: the JS client (mfa-client.js and its TypeScript declarations), the
                   widget's modules and styles, vendored libraries with their licences. Public files:
                   any origin may load them (a frontend imports mfa-client.js as a module, which is a
                   CORS request).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, render_template, send_from_directory
from flask.blueprints import BlueprintSetupState

from app.cors import check_origins
from app.services import services

bp = Blueprint("frontend", __name__)

STATIC = Path(__file__).resolve().parent / "static"
# The only kinds of file served, each with its type: nosniff makes browsers trust exactly these.
_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".ts": "text/plain",  # TypeScript declarations, read by people and editors
    ".txt": "text/plain",
    ".png": "image/png",
    "": "text/plain",  # LICENSE, NOTICE
}


def content_security_policy(**directives: str) -> str:
    """A policy that allows nothing but what `directives` name (`script_src="'self'"`...)."""
    allowed = {"default-src": "'none'", "base-uri": "'none'", "form-action": "'none'"}
    allowed.update({name.replace("_", "-"): value for name, value in directives.items()})
    return "; ".join(f"{name} {value}" for name, value in allowed.items())


def frame_ancestors() -> str:
    """Who may frame the widget: the service's own pages (the demo) and WIDGET_FRAME_ANCESTORS."""
    return " ".join(["'self'", *services().settings.widget_frame_ancestors])


def page(html: str, policy: str, framable: bool = False) -> Response:
    """An HTML answer under its own policy; a page no one may frame says so in both headers."""
    resp = Response(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = policy
    if not framable:
        resp.headers["X-Frame-Options"] = "DENY"
    return resp


@bp.get("/widget")
def widget() -> Response:
    """The MFA widget; it reads the session and its secret from the URL fragment."""
    origins = services().settings.widget_frame_ancestors
    policy = content_security_policy(
        script_src="'self'",
        style_src="'self'",
        img_src="'self'",
        connect_src="'self'",
        frame_ancestors=frame_ancestors(),
    )
    return page(render_template("widget.html", parent_origins=" ".join(origins)), policy, framable=True)


@bp.get("/docs")
def docs() -> Response:
    """The OpenAPI document in Swagger UI, served from this service (no CDN)."""
    policy = content_security_policy(
        script_src="'self'",
        style_src="'self'",
        img_src="'self' data:",  # Swagger UI's icons are data: URLs in its stylesheet
        connect_src="'self'",
        frame_ancestors="'none'",
    )
    return page(render_template("docs.html"), policy)


@bp.get("/static/<path:filename>")
def static(filename: str) -> Response:
    """A file of app/static/, with its type; anything else is 404."""
    suffix = Path(filename).suffix
    if suffix not in _TYPES:
        abort(404)
    resp = send_from_directory(STATIC, filename, mimetype=_TYPES[suffix], max_age=None)
    resp.headers["Access-Control-Allow-Origin"] = "*"  # public files, fetched without credentials
    resp.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    resp.headers["Cache-Control"] = "no-cache"  # revalidated (ETag): a deploy reaches every browser
    return resp


@bp.record_once
def _check_frame_ancestors(state: BlueprintSetupState) -> None:
    """Fail start-up on a WIDGET_FRAME_ANCESTORS entry that is not an origin (`*` included)."""
    wired = state.app.extensions.get("mfa")  # absent where only the routes are mounted (tests)
    if wired is not None:
        check_origins(wired.settings.widget_frame_ancestors, "WIDGET_FRAME_ANCESTORS")
