"""Reading a Belvo request's JSON body, and Belvo's field errors for what it lacks."""

from __future__ import annotations

from typing import Any

from flask import request

from .errors import BelvoError


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
