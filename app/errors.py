"""Every error leaves as one JSON shape: RFC 9457 problem details plus `code` and `request_id`."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, json
from pydantic import ValidationError
from redis.exceptions import BusyLoadingError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

from mfa.errors import (
    DuplicateSession,
    SessionExpired,
    SessionNotAwaitingToken,
    SessionNotFound,
    WriteNotAcknowledged,
)

log = logging.getLogger(__name__)
PROBLEM_TYPE = "urn:belvo-mfa:problem:"


class ApiError(Exception):
    """An error answer: HTTP status, stable `code`, a human title and detail."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(err: ApiError) -> Response:
    """Render an ApiError as application/problem+json."""
    body = {
        "type": PROBLEM_TYPE + err.code,
        "title": err.title,
        "status": err.status,
        "detail": err.detail or err.title,
        "code": err.code,
        "request_id": g.get("request_id"),
        **err.extra,
    }
    g.problem_code = err.code  # what the answer was, for the metrics (app/metrics.py)
    resp = Response(json.dumps(body), status=err.status, mimetype="application/problem+json")
    resp.headers.update(err.headers)
    return resp


def validation_error(exc: ValidationError) -> ApiError:
    """A pydantic error as 422 `validation_error`, naming each field; input values are never echoed."""
    errors = [
        {
            "field": ".".join(str(part) for part in e["loc"]) or "body",
            "message": e["msg"],
            "type": e["type"],
        }
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return ApiError(422, "validation_error", "The request body is not valid", "See `errors`.", errors=errors)


_DOMAIN = {
    SessionNotFound: (404, "session_not_found", "No such session"),
    DuplicateSession: (409, "duplicate_session", "A session for this Belvo session already exists"),
    SessionExpired: (410, "session_expired", "The MFA session has expired"),
    SessionNotAwaitingToken: (409, "session_not_awaiting_token", "The session is not awaiting a token"),
}


def to_api_error(exc: Exception) -> ApiError:
    """Map any exception to the ApiError it is answered with."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValidationError):
        return validation_error(exc)
    for kind, (status, code, title) in _DOMAIN.items():
        if isinstance(exc, kind):
            detail = str(exc) if isinstance(exc, SessionNotAwaitingToken) else None
            return ApiError(status, code, title, detail)
    if isinstance(
        exc, (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ReadOnlyError, WriteNotAcknowledged)
    ):
        log.warning(
            "store unavailable: %s", exc if isinstance(exc, WriteNotAcknowledged) else type(exc).__name__
        )
        return ApiError(
            503, "store_unavailable", "The session store is unavailable", headers={"Retry-After": "1"}
        )
    if isinstance(exc, HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        if exc.code == 413:
            code = "payload_too_large"
        valid = getattr(exc, "valid_methods", None)  # a routing 405 says what would have been allowed
        headers = {"Allow": ", ".join(sorted(valid))} if exc.code == 405 and valid else None
        return ApiError(exc.code or 500, code, exc.name or "Error", exc.description, headers=headers)
    log.exception("unhandled error")
    return ApiError(
        500, "internal_error", "Internal server error", "The error was logged with this request_id."
    )


def register_errorhandlers(app: Flask) -> None:
    """Route every exception through to_api_error."""

    @app.errorhandler(Exception)
    def _handle(exc: Exception) -> Response:
        return problem_response(to_api_error(exc))
