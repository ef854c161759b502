"""Request bodies in: size-capped, JSON-parsed, validated by a pydantic model."""

from __future__ import annotations

import json
from typing import TypeVar

from flask import request
from pydantic import BaseModel

from app.errors import ApiError

M = TypeVar("M", bound=BaseModel)


def read_json() -> object:
    """The JSON body (an empty body reads as {}); 400 `invalid_json` when it does not parse."""
    raw = request.get_data(cache=True)  # MAX_CONTENT_LENGTH turns an oversized body into 413 here
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "The request body is not valid JSON") from None


def parse_query(model: type[M]) -> M:
    """Validate the query string against `model` (the first value of each name); errors become 422."""
    return model.model_validate(request.args.to_dict())


def parse_body(model: type[M]) -> M:
    """Validate the JSON body against `model`; pydantic errors become 422 `validation_error`."""
    return model.model_validate(read_json())
