"""CORS for the routes a browser calls with a session's client secret: read, submit the token, cancel.

Only the origins in CORS_ORIGINS are allowed, each matched exactly (scheme, host and port); `*`
allows any origin, and only when given explicitly. Credentials mode stays off: the frontend sends a
Bearer client secret, never cookies. Creating a session is a backend call and gets no CORS headers,
so a browser cannot make it cross-origin.
"""

from __future__ import annotations

import re

from flask import Flask, Response, request
from flask_cors import CORS

from mfa.errors import ConfigError

ALLOW_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "X-Request-ID")
EXPOSE_HEADERS = ("X-Request-ID", "Retry-After", "Idempotent-Replayed")
PREFLIGHT_MAX_AGE_SECONDS = 600
_SESSION = re.compile(r"^/v1/sessions/[^/]+\Z")
_SESSION_ACTION = re.compile(r"^/v1/sessions/[^/]+/(?:token|cancel)\Z")
_ORIGIN = re.compile(r"^https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?\Z")


def check_origins(origins: tuple[str, ...], setting: str) -> tuple[str, ...]:
    """The origins, each scheme://host[:port]; ConfigError names the setting and the first that is not one."""
    for origin in origins:
        if not _ORIGIN.match(origin):
            raise ConfigError(
                f"{setting}: {origin!r} is not an origin: scheme://host[:port], no path or wildcard"
            )
    return origins


def origin_patterns(origins: tuple[str, ...]) -> list[re.Pattern[str]] | str:
    """`*`, or one exact-match pattern per origin; ConfigError names an origin that is not one."""
    if "*" in origins:
        return "*"
    check_origins(origins, "CORS_ORIGINS")
    # flask-cors reads a string with regex characters as a regex; escaped patterns cannot widen.
    return [re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) for origin in origins]


def register_cors(app: Flask, origins: tuple[str, ...]) -> None:
    """Answer preflights and add CORS headers for the frontend routes, for the allowed origins only."""
    if not origins:
        return
    allowed = origin_patterns(origins)
    CORS(
        app,
        resources={_SESSION: {"methods": ["GET"]}, _SESSION_ACTION: {"methods": ["POST"]}},
        origins=allowed,
        allow_headers=list(ALLOW_HEADERS),
        expose_headers=list(EXPOSE_HEADERS),
        max_age=PREFLIGHT_MAX_AGE_SECONDS,
        supports_credentials=False,
        send_wildcard=allowed == "*",
        # Without an Origin there is no CORS request: send nothing rather than the list of origins.
        always_send=False,
        vary_header=False,  # set below on every answer of these routes, whatever the origin
    )

    @app.after_request
    def _vary(resp: Response) -> Response:
        if allowed != "*" and (_SESSION.match(request.path) or _SESSION_ACTION.match(request.path)):
            resp.vary.add("Origin")
        return resp
