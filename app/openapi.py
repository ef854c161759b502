"""The OpenAPI document, generated from the routes and their pydantic models (no hand-kept schema)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Flask, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from app.schemas import Problem

_REF = "#/components/schemas/{model}"
_PROBLEM_STATUSES = {400, 401, 404, 409, 410, 413, 422, 429, 503}

bp = Blueprint("openapi", __name__)
View = TypeVar("View", bound=Callable[..., Any])


def documented(
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    responses: dict[int, type[BaseModel] | None],
    auth: str | None = "bearer",
    headers: dict[str, str] | None = None,
    query: type[BaseModel] | None = None,
) -> Callable[[View], View]:
    """Attach what the OpenAPI document says of a view: its body, query parameters, answers, auth and
    headers. A `query` model's fields must have inline schemas (Literal, not Enum)."""

    def attach(view: View) -> View:
        view.openapi = {  # type: ignore[attr-defined]
            "summary": summary,
            "body": body,
            "responses": responses,
            "auth": auth,
            "headers": headers or {},
            "query": query,
        }
        return view

    return attach


def _models(app: Flask) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    """Every documented model, with the side it is read on: a request body as it is validated (what
    a client may send), an answer as it is serialised (what the service sends)."""
    found: dict[str, tuple[type[BaseModel], JsonSchemaMode]] = {"Problem": (Problem, "serialization")}
    for view in app.view_functions.values():
        spec = getattr(view, "openapi", None)
        if spec is None:
            continue
        if spec["body"] is not None:
            found[spec["body"].__name__] = (spec["body"], "validation")
        for model in spec["responses"].values():
            if model is not None:
                found[model.__name__] = (model, "serialization")
    return list(found.values())


def build_document(app: Flask) -> dict[str, Any]:
    """Walk the URL map and emit every documented route."""
    models = _models(app)
    refs, defs = models_json_schema(models, ref_template=_REF)
    ref = {model: refs[(model, mode)] for model, mode in models}
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        spec = getattr(app.view_functions.get(rule.endpoint), "openapi", None)
        if spec is None:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule, spec, ref)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Belvo MFA session service",
            "version": "1.0.0",
            "description": "Pauses Belvo calls that need an MFA token and resumes them once per step.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A backend API key, or a session's client secret",
                },
                "belvoWebhook": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "The Authorization value set for webhooks in Belvo's dashboard "
                    "(BELVO_WEBHOOK_AUTHORIZATION), sent by Belvo with each webhook",
                },
            },
        },
    }


def _operation(rule: Any, spec: dict[str, Any], ref: dict[Any, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": spec["summary"],
        "operationId": rule.endpoint.replace(".", "_"),
        "responses": {},
    }
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 64},
        }
        for name in sorted(rule.arguments)
    ]
    params += [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": text,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
        for name, text in spec["headers"].items()
    ]
    if spec["query"] is not None:
        schema = spec["query"].model_json_schema()
        params += [
            {"name": name, "in": "query", "required": name in schema.get("required", []), "schema": prop}
            for name, prop in schema["properties"].items()
        ]
    if params:
        op["parameters"] = params
    if spec["auth"]:
        op["security"] = [{spec["auth"]: []}]
    if spec["body"] is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref[spec["body"]]}}}
    for status, model in spec["responses"].items():
        media = "application/problem+json" if status in _PROBLEM_STATUSES else "application/json"
        schema = ref[model] if model is not None else ref[Problem]
        op["responses"][str(status)] = {
            "description": _DESCRIPTIONS.get(status, "OK"),
            "content": {media: {"schema": schema}},
        }
    return op


_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "Malformed request",
    401: "Missing or invalid credential",
    404: "Not found, or the credential does not open it",
    409: "Conflict with the session's state",
    410: "The MFA session has expired",
    413: "Body too large",
    422: "Validation error",
    429: "Too many requests",
    503: "The session store is unavailable",
}


@bp.get("/openapi.json")
def openapi_document() -> Any:
    """Serve the document, built once per process."""
    doc = current_app.extensions.setdefault("openapi_document", None) or build_document(current_app)
    current_app.extensions["openapi_document"] = doc
    return jsonify(doc)
