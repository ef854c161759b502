"""The Flask application factory: wiring only."""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask, Response

from app.cors import register_cors
from app.errors import register_errorhandlers
from app.logs import register_request_id
from app.metrics import register_metrics
from app.ratelimit import register_rate_limits
from app.services import Services
from app.tracing import register_tracing
from mfa import tracing
from mfa.logs import configure_logging
from mfa.settings import Settings

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}
_SECURITY_HEADERS_BY_KEY = tuple((name.lower(), (name, value)) for name, value in _SECURITY_HEADERS.items())


def create_app(test_config: Mapping[str, str] | None = None) -> Flask:
    """Build the app from the environment; `test_config` overrides environment variables by name."""
    env = {**os.environ, **(test_config or {})}
    settings = Settings.from_env(env).require_web()
    configure_logging(settings.log_level, settings.log_format)
    app = Flask(__name__, static_folder=None)  # app/frontend.py serves app/static/ with its own headers
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["mfa"] = Services.build(settings)
    register_blueprints(app)
    register_errorhandlers(app)
    register_request_id(app, settings.access_log)
    if tracing.configure_tracing("belvo-mfa-web", env):
        register_tracing(app)
    register_metrics(app, settings.metrics_enabled)
    register_security_headers(app)
    register_rate_limits(app)
    register_cors(app, settings.cors_origins)
    return app


def register_blueprints(app: Flask) -> None:
    """Mount the route modules."""
    from app import demo, flows, frontend, health, link_events, live, openapi, sessions, webhooks

    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(sessions.bp)
    app.register_blueprint(live.bp)
    app.register_blueprint(flows.bp)
    app.register_blueprint(link_events.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(frontend.bp)
    app.register_blueprint(demo.bp)


def register_security_headers(app: Flask) -> None:
    """Headers every answer carries: no sniffing, no framing, no caching of session data. A page that
    sets its own Content-Security-Policy (app/frontend.py) keeps it, and its frame-ancestors alone
    decides who may frame it: X-Frame-Options, the older form, could only say DENY."""

    @app.after_request
    def _headers(resp: Response) -> Response:
        # One pass over the answer's headers, then one extend: every answer takes this path, and a
        # setdefault per header scans the list (and raises KeyError inside) six times.
        present = {name.lower() for name, _ in resp.headers.items()}
        skip = present | ({"x-frame-options"} if "content-security-policy" in present else set())
        resp.headers.extend([header for key, header in _SECURITY_HEADERS_BY_KEY if key not in skip])
        return resp
