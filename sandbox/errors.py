"""Belvo's error bodies: a JSON list of `{code, message, request_id}` (+`field`)."""

from __future__ import annotations

import uuid

from flask import Flask, Response, jsonify
from werkzeug.exceptions import InternalServerError, MethodNotAllowed, NotFound


class BelvoError(Exception):
    """An answer Belvo gives as an error list; raised by views, rendered by one handler."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


class InvalidControlRequest(ValueError):
    """A malformed request to the `/_sandbox` control API (answered 400, not Belvo-shaped)."""


def new_request_id() -> str:
    """A fresh request id: 32 hex characters, as Belvo sends."""
    return uuid.uuid4().hex


def error_item(code: str, message: str, field: str | None = None) -> dict:
    """One element of a Belvo error list."""
    item = {"code": code, "message": message, "request_id": new_request_id()}
    if field is not None:
        item["field"] = field
    return item


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A complete Belvo error response."""
    response = jsonify([error_item(code, message, field)])
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register_error_handlers(app: Flask) -> None:
    """Answer every error, ours or Flask's, in Belvo's list shape."""

    @app.errorhandler(BelvoError)
    def _belvo(error: BelvoError) -> Response:
        return error_response(error.status, error.code, error.message, error.field, error.headers)

    @app.errorhandler(InvalidControlRequest)
    def _control(error: InvalidControlRequest) -> tuple[dict, int]:
        return {"error": str(error)}, 400

    @app.errorhandler(NotFound)
    def _not_found(_: NotFound) -> Response:
        return error_response(404, "not_found", "Not found")

    @app.errorhandler(MethodNotAllowed)
    def _not_allowed(error: MethodNotAllowed) -> Response:
        allow = ", ".join(error.valid_methods or [])
        return error_response(405, "method_not_allowed", "Method not allowed", headers={"Allow": allow})

    @app.errorhandler(InternalServerError)
    def _crash(_: InternalServerError) -> Response:
        return error_response(
            500,
            "unexpected_error",
            "Belvo is unable to process the request due to an internal system issue or to an unsupported "
            "response from an institution",
        )
