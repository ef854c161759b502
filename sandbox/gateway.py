"""What happens to every upstream call before and after its view: log, latency, faults, auth.

Order matters and mirrors the real path to Belvo: the network (latency, faults) comes before
Belvo's authentication, so a `drop` fault drops even a call with bad keys.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Flask, Response, g, request

from .data import DATA_RESOURCES, RESUMABLE
from .errors import BelvoError
from .faults import NoAnswer, fault_response
from .state import SandboxState, current_state

AUTHENTICATED_PREFIXES = ("/api/", "/investments/")


def resource_of(path: str) -> str | None:
    """The Belvo resource a path addresses (`/api/links/<id>/` -> `links`)."""
    if path.startswith("/investments/portfolios"):
        return "investments/portfolios"
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "api" and parts[2]:
        return parts[2]
    return None


def kind_of(method: str, path: str) -> str:
    """`register`, `retrieve`, `resume`, `update`, `list` or `other`: what faults match on."""
    resource = resource_of(path)
    collection = path in (f"/api/{resource}/", "/investments/portfolios/")
    if collection and method == "POST" and resource == "links":
        return "register"
    if collection and method == "GET" and resource == "links":
        return "list"
    if collection and method == "POST" and resource in DATA_RESOURCES:
        return "retrieve"
    if collection and method == "PATCH" and resource in RESUMABLE:
        return "resume"
    if method == "PUT" and resource == "links" and not collection:
        return "update"
    return "other"


def credentials_ok(config: dict[str, Any]) -> bool:
    """Whether the request carries the configured secret keys as HTTP basic auth."""
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    id_ok = secrets.compare_digest((auth.username or "").encode(), config["secret_id"].encode())
    password_ok = secrets.compare_digest((auth.password or "").encode(), config["secret_password"].encode())
    return id_ok and password_ok


def describe_call(state: SandboxState) -> dict[str, Any]:
    """The call-log record of the current request."""
    body = request.get_json(force=True, silent=True) if request.get_data() else None
    body = body if isinstance(body, dict) else {}
    token = body.get("token")
    path_parts = request.path.strip("/").split("/")
    link = body.get("link") or (
        path_parts[2] if path_parts[:2] == ["api", "links"] and len(path_parts) > 2 else None
    )
    needs_auth = request.path.startswith(AUTHENTICATED_PREFIXES) or request.path == "/api"
    return {
        "method": request.method,
        "path": request.path,
        "resource": resource_of(request.path),
        "kind": kind_of(request.method, request.path),
        "session": body.get("session"),
        "link": link,
        "token": token,
        "has_token": token not in (None, ""),
        "save_data": body.get("save_data"),
        "body_keys": sorted(body),
        "query": dict(request.args),
        "auth_ok": credentials_ok(state.config) if needs_auth else None,
        "request_id": request.headers.get("X-Request-ID"),  # the caller's, which Belvo would ignore
        "status": None,
        "fault": None,
        "at": time.time(),
    }


def register_gateway(app: Flask) -> None:
    """Install the before/after hooks that every non-control request goes through."""

    @app.before_request
    def _before() -> Response | None:
        if request.path.startswith("/_sandbox"):
            return None
        state = current_state()
        call = g.sandbox_call = state.log_call(describe_call(state))
        latency_ms = state.config["latency_ms"]
        if latency_ms:
            time.sleep(latency_ms / 1000)
        fault = state.take_fault(call["kind"])
        if fault is not None:
            state.finish_call(call, fault=fault.mode)
            if fault.mode == "delay":
                time.sleep(fault.delay_seconds)
            elif fault.process:
                g.sandbox_fault = fault
            else:
                if fault.mode == "status" and fault.status == 400 and call["kind"] == "resume":
                    # An institution error is a final answer: Belvo has used the session up.
                    state.discard_session(call["session"])
                return fault_response(fault, request.environ.get("werkzeug.socket"))
        if call["auth_ok"] is False:
            raise BelvoError(
                401,
                "authentication_failed",
                "Invalid Secret Keys",
                headers={"WWW-Authenticate": 'Basic realm="api"'},
            )
        return None

    @app.after_request
    def _after(response: Response) -> Response:
        call = g.get("sandbox_call")
        if call is None:
            return response
        fault = g.pop("sandbox_fault", None)
        if fault is not None:
            # The call was processed for real; only its answer is lost or mangled.
            response = fault_response(fault, request.environ.get("werkzeug.socket"))
        status = None if isinstance(response, NoAnswer) else response.status_code
        current_state().finish_call(call, status=status)
        return response
