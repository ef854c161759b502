"""Belvo's webhooks, sent on request: `POST /_sandbox/webhooks` tells a backend a link needs its user.

Belvo refreshes recurrent links by itself and, when the bank wants the user again, sends a LINK
webhook (`token_required`, or `invalid_credentials` when the password changed) to the URL set in its
dashboard, with the Authorization header set there. The sandbox sends the same envelope to a URL the
caller gives, which must be on loopback (this is a test tool, not a way to reach other hosts), and
marks the link as Belvo would.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any
from urllib.parse import urlsplit

import requests

from .errors import InvalidControlRequest, new_request_id
from .state import current_state

# webhook_code -> the link status it leaves, and the error Belvo's refresh met.
LINK_CODES = {
    "token_required": (
        "token_required",
        "token_required",
        "A MFA token is required by the institution to login",
    ),
    "invalid_credentials": (
        "invalid",
        "login_error",
        "Invalid credentials provided to login to the institution",
    ),
}
SEND_TIMEOUT_SECONDS = 5


def _loopback_url(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidControlRequest("url is required: where to send the webhook (http://127.0.0.1:PORT/...)")
    parts = urlsplit(value)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        raise InvalidControlRequest("url must be http(s) on a loopback address (127.0.0.1, ::1, localhost)")
    return value


def send(body: dict[str, Any]) -> dict[str, Any]:
    """Mark the link and POST Belvo's webhook envelope to `url`; report what the receiver answered."""
    url = _loopback_url(body.get("url"))
    code = body.get("webhook_code", "token_required")
    if code not in LINK_CODES:
        raise InvalidControlRequest(f"webhook_code must be one of {list(LINK_CODES)}")
    authorization = body.get("authorization")
    if authorization is not None and not isinstance(authorization, str):
        raise InvalidControlRequest("authorization must be a string (the Authorization header to send)")
    state = current_state()
    link = state.get_link(body.get("link"))
    if link is None:
        raise InvalidControlRequest("link must be the id of a link the sandbox holds")
    status, error_code, message = LINK_CODES[code]
    state.update_link(link.id, status=status)
    webhook = {
        "webhook_id": str(body.get("webhook_id") or uuid.uuid4().hex),
        "webhook_type": "LINK",
        "webhook_code": code,
        "link_id": link.id,
        "request_id": new_request_id(),
        "external_id": link.external_id,
        "process_type": "recurrent_update",
        "data": {"error_code": error_code, "error_message": message},
    }
    headers = {"Authorization": authorization} if authorization else {}
    try:
        answer = requests.post(url, json=webhook, headers=headers, timeout=SEND_TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        return {"webhook": webhook, "status": None, "error": type(exc).__name__}
    return {"webhook": webhook, "status": answer.status_code, "answer": answer.text[:2000]}
