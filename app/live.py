"""Live status for the frontend: a session's changes as Server-Sent Events (the long-poll fallback,
`GET /v1/sessions/{id}?wait=25&after=7`, is the read route's: app/sessions.py).

  GET /v1/sessions/{id}/stream            text/event-stream: the session now, then every change

Each event is `id: <version>` and `data: <the session object>`, as GET /v1/sessions/{id} answers it for
the same credential (a client secret never sees Belvo's bodies). A comment line every
STREAM_HEARTBEAT_SECONDS keeps idle streams (and proxies) alive. The stream ends after the event that
makes the session final; a client that reconnects with `Last-Event-ID` gets every version after that
one (or 204 No Content, which tells an EventSource to stop, when it already has the final one). A
stream ends early, with a `retry:` hint, after STREAM_MAX_SECONDS or when its process stops; the client
reconnects and resumes with Last-Event-ID. mfa/live.py holds the logic; this module speaks HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request

from app.auth import authorize_session, current_principal
from app.openapi import documented
from app.schemas import SessionOut
from app.services import Services, services
from app.sessions import with_result
from mfa.live import Change, Heartbeat, Update, follow
from mfa.session import Audience

bp = Blueprint("live", __name__, url_prefix="/v1/sessions")

RETRY_MS = 2000  # how long a client waits before it reconnects to a stream that ended early
_VERSION = re.compile(r"[0-9]{1,18}")


def _last_event_id() -> int | None:
    """The version the client already has (Last-Event-ID); anything but a whole number means none."""
    raw = request.headers.get("Last-Event-ID", "").strip()
    return int(raw) if _VERSION.fullmatch(raw) else None


def _shown(change: Change, audience: Audience, svc: Services) -> dict[str, Any]:
    """The session object of a change, as GET shows it to `audience` (an API key sees Belvo's result)."""
    session = change.session
    if audience is Audience.BACKEND and session.status.is_final:
        session = with_result(session, svc)
    return session.public(change.at_ms, audience)


def _event_stream(updates: Iterator[Update], audience: Audience, svc: Services) -> Iterator[str]:
    """The SSE text of `updates`: a `retry:` hint first, so any disconnect is retried at our pace.
    It runs after the view has returned, outside any request context: all it needs is passed in."""
    yield f"retry: {RETRY_MS}\n\n"
    for update in updates:
        if isinstance(update, Change):
            data = json.dumps(_shown(update, audience, svc), separators=(",", ":"))
            yield f"id: {update.session.version}\ndata: {data}\n\n"
        elif isinstance(update, Heartbeat):
            yield ": heartbeat\n\n"
        else:
            yield f"retry: {RETRY_MS}\n\n"


@bp.get("/<session_id>/stream")
@documented(
    "Follow a session: Server-Sent Events carrying the session object on every change, until it is final",
    responses={200: SessionOut, 204: None, 401: None, 404: None, 429: None, 503: None},
    stream=True,
    headers={"Last-Event-ID": "The last event's id (the session's version) the client has: resume after it"},
)
def stream_session(session_id: str) -> Response:
    session = authorize_session()  # a wrong credential is answered 404 here, before any stream opens
    seen = _last_event_id()
    if seen is not None and seen >= session.version and session.status.is_final:
        return Response(status=204)
    svc = services()
    updates = follow(
        svc.store,
        svc.feed,
        session,
        seen,
        heartbeat_seconds=svc.settings.stream_heartbeat_seconds,
        max_seconds=svc.settings.stream_max_seconds,
    )
    events = _event_stream(updates, current_principal().audience, svc)
    resp = Response(events, mimetype="text/event-stream")
    resp.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes, unbuffered
    return resp
