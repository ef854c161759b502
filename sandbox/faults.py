"""Upstream misbehaviour on demand: error statuses, slowness, garbage and broken connections.

Breaking a connection needs the raw socket, which Werkzeug's dev server exposes as
`environ["werkzeug.socket"]`. The response body is a generator that shuts the socket down and
raises `ConnectionAbortedError`; Werkzeug treats that as a client that went away, so nothing is
written and nothing is logged.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Response

from .errors import InvalidControlRequest, error_item
from .state import Fault

MODES = ("status", "delay", "hang", "drop", "html", "truncated", "bad_shape")
MATCHES = ("resume", "register", "retrieve", "update", "list", "any")
DEFAULT_HANG_SECONDS = 30.0

# Belvo's error for each status its spec lists (code and message as the spec gives them).
STATUS_ERRORS = {
    400: ("institution_down", "The financial institution is down, try again later"),
    401: ("authentication_failed", "Invalid Secret Keys"),
    403: ("access_to_resource_denied", "You don't have access to this resource."),
    404: ("not_found", "Not found"),
    408: (
        "request_timeout",
        "The request timed out, you can retry asking for less data by changing your query parameters",
    ),
    500: (
        "unexpected_error",
        "Belvo is unable to process the request due to an internal system issue or to an unsupported "
        "response from an institution",
    ),
}
# Any other status (429, 502, 503, ...) is the sandbox's own, named as such: Belvo's spec lists no such
# answer, though a proxy or a rate limiter in front of Belvo may give one.
INJECTED = ("sandbox_fault", "HTTP {status}, injected by the sandbox: not an answer Belvo's spec lists")


def parse_fault(body: Any) -> Fault:
    """Validate a `POST /_sandbox/faults` body into a queued fault."""
    if not isinstance(body, dict):
        raise InvalidControlRequest("expected a JSON object")
    unknown = set(body) - {
        "mode",
        "count",
        "match",
        "status",
        "delay_seconds",
        "retry_after",
        "body",
        "process",
    }
    if unknown:
        raise InvalidControlRequest(f"unknown fault fields: {sorted(unknown)}")
    mode = body.get("mode")
    if mode not in MODES:
        raise InvalidControlRequest(f"mode must be one of {list(MODES)}")
    match = body.get("match", "resume")
    if match not in MATCHES:
        raise InvalidControlRequest(f"match must be one of {list(MATCHES)}")
    count = _number(body, "count", 1, int, minimum=1)
    status = _number(body, "status", 500 if mode == "status" else None, int, minimum=100)
    if status is not None and status > 599:
        raise InvalidControlRequest("status must be between 100 and 599")
    default_delay = DEFAULT_HANG_SECONDS if mode == "hang" else 0.0
    delay = _number(body, "delay_seconds", default_delay, (int, float), minimum=0)
    retry_after = _number(body, "retry_after", None, int, minimum=0)
    if body.get("body") is not None and not isinstance(body["body"], str):
        raise InvalidControlRequest("body must be a string")
    if not isinstance(body.get("process", False), bool):
        raise InvalidControlRequest("process must be a boolean")
    return Fault(
        id=uuid.uuid4().hex,
        mode=mode,
        count=count,
        match=match,
        status=status,
        delay_seconds=float(delay),
        retry_after=retry_after,
        body=body.get("body"),
        process=body.get("process", False),
    )


def _number(body: dict[str, Any], key: str, default: Any, kind: Any, minimum: float) -> Any:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
        raise InvalidControlRequest(f"{key} must be a number >= {minimum}")
    return value


class NoAnswer(Response):
    """A response that is never sent: the connection is closed instead."""


def fault_response(fault: Fault, sock: socket.socket | None) -> Response:
    """The answer that replaces the real one (`delay` is applied by the caller, not here)."""
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    if fault.mode == "status":
        status = fault.status or 500
        code, message = STATUS_ERRORS.get(status, INJECTED)
        body = (
            fault.body
            if fault.body is not None
            else json.dumps([error_item(code, message.format(status=status))])
        )
        return Response(body, status, headers, mimetype="application/json")
    if fault.mode == "html":
        page = "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
        return Response(fault.body or page, fault.status or 200, headers, mimetype="text/html")
    if fault.mode == "bad_shape":
        body = fault.body if fault.body is not None else json.dumps({"unexpected": True})
        return Response(body, fault.status or 200, headers, mimetype="application/json")
    if fault.mode == "truncated":
        full = (fault.body or json.dumps([error_item("unexpected_error", "x" * 64)])).encode()
        headers["Content-Length"] = str(len(full))
        response = Response(_send_then_close(sock, full[: len(full) // 2]), fault.status or 200, headers)
        response.mimetype = "application/json"
        return response
    if fault.mode == "hang":
        _wait_unless_client_leaves(sock, fault.delay_seconds)
    return NoAnswer(_send_then_close(sock, b""))


def _send_then_close(sock: socket.socket | None, prefix: bytes) -> Iterator[bytes]:
    if prefix:
        yield prefix
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    raise ConnectionAbortedError("sandbox fault: connection closed on purpose")


def _wait_unless_client_leaves(sock: socket.socket | None, seconds: float) -> None:
    # Polling for the client's FIN frees the thread early once a timed-out client gives up.
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if sock is None:
            time.sleep(left)
            return
        readable, _, _ = select.select([sock], [], [], min(left, 0.25))
        if readable:
            try:
                if not sock.recv(1, socket.MSG_PEEK):
                    return
            except OSError:
                return
            time.sleep(min(left, 0.25))
