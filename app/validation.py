"""Request bodies in: size-capped whatever their framing, JSON-parsed within a nesting depth, validated
by a pydantic model. No body, however malformed, large or deep, gets past here as a 5xx."""

from __future__ import annotations

import json
from typing import TypeVar

from flask import current_app, g, request
from pydantic import BaseModel

from app.errors import ApiError
from mfa.nesting import MAX_BODY_DEPTH, deeper_than

M = TypeVar("M", bound=BaseModel)
_READ_CHUNK = 16 * 1024


def _too_large(cap: int) -> ApiError:
    return ApiError(413, "payload_too_large", "Content Too Large", f"The request body is over {cap} bytes.")


def _read_unframed(cap: int) -> bytes:
    """A body with no Content-Length (chunked; the server ends the stream): read up to one byte past
    the cap, so a longer body is refused instead of cut at the cap (Werkzeug's stream stops quietly)."""
    stream = request.environ["wsgi.input"]
    body = bytearray()
    while len(body) <= cap:
        chunk = stream.read(min(_READ_CHUNK, cap + 1 - len(body)))
        if not chunk:
            break
        body += chunk
    if len(body) > cap:
        raise _too_large(cap)
    return bytes(body)


def request_body() -> bytes:
    """The whole body, or 413: over MAX_BODY_BYTES by its Content-Length or by what arrives."""
    cached: bytes | None = g.get("request_body")
    if cached is not None:
        return cached
    cap: int = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and request.environ.get("wsgi.input_terminated"):
        body = _read_unframed(cap)
    else:
        body = request.get_data(cache=True)  # a Content-Length over the cap is a 413 here
    g.request_body = body
    return body


def read_json() -> object:
    """The JSON body (an empty body reads as {}); 400 `invalid_json` when it does not parse or nests
    deeper than MAX_BODY_DEPTH."""
    raw = request_body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested past the parser
        raise ApiError(400, "invalid_json", "The request body is not valid JSON") from None
    # Fewer brackets than the limit cannot nest past it: most bodies skip the walk.
    if raw.count(b"[") + raw.count(b"{") > MAX_BODY_DEPTH and deeper_than(value, MAX_BODY_DEPTH):
        raise ApiError(
            400,
            "invalid_json",
            "The request body is not valid JSON",
            f"It nests deeper than {MAX_BODY_DEPTH} levels.",
        )
    return value


def parse_query(model: type[M]) -> M:
    """Validate the query string against `model` (the first value of each name); errors become 422."""
    return model.model_validate(request.args.to_dict())


def parse_body(model: type[M]) -> M:
    """Validate the JSON body against `model`; pydantic errors become 422 `validation_error`."""
    return model.model_validate(read_json())
