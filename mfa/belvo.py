"""Belvo's HTTP API as this service uses it: register, retrieve, and the resume PATCH."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import requests

# Belvo's resources with a data call and a resume PATCH; `links` has the register call instead.
DataResource = Literal[
    "accounts",
    "transactions",
    "balances",
    "owners",
    "invoices",
    "incomes",
    "recurring-expenses",
    "risk-insights",
]
Resource = Literal["links", DataResource]  # nested Literals flatten: one enum, so errors name `resource`
MAX_BODY_BYTES = 10 * 1024 * 1024  # the default read cap; the worker passes RESULT_MAX_BYTES


class UpstreamUnavailable(Exception):
    """No HTTP answer: timeout, refused or dropped connection, truncated body."""


@dataclass(frozen=True)
class UpstreamAnswer:
    """Belvo's HTTP answer: status, parsed JSON body (None when not JSON), Retry-After seconds."""

    status: int
    body: Any
    is_json: bool
    retry_after: float | None = None
    oversized: bool = False  # the body ran past the read cap: left unread, never half-parsed


def resource_path(resource: str) -> str:
    """Belvo's path for a resource; investments/portfolios lives outside /api/."""
    if resource == "investments/portfolios":
        return "/investments/portfolios/"
    return f"/api/{resource}/"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class BelvoClient:
    """HTTP basic auth, JSON in and out, a timeout on every call."""

    def __init__(
        self,
        base_url: str,
        secret_id: str,
        secret_password: str,
        timeout_seconds: float,
        http: requests.Session | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_body_bytes = max_body_bytes
        self._auth = (secret_id, secret_password)
        self.timeout = (min(timeout_seconds, 10.0), timeout_seconds)
        self.http = http or requests.Session()

    def __repr__(self) -> str:
        return f"BelvoClient({self.base_url!r})"

    def resume(
        self,
        resource: str,
        *,
        session: str,
        link: str | None,
        token: str | None,
        save_data: bool | None = None,
    ) -> UpstreamAnswer:
        """PATCH the resource with {session, token, link} (+save_data); no token when none is expected."""
        body: dict[str, Any] = {"session": session}
        if link is not None:
            body["link"] = link
        if token is not None:
            body["token"] = token
        if save_data is not None and resource != "links":
            body["save_data"] = save_data
        return self.send("PATCH", resource_path(resource), body)

    def register(self, fields: dict[str, Any]) -> UpstreamAnswer:
        """POST /api/links/: register a link with the end user's bank credentials."""
        return self.send("POST", "/api/links/", fields)

    def retrieve(self, resource: str, fields: dict[str, Any]) -> UpstreamAnswer:
        """POST /api/{resource}/: retrieve a link's data (`fields` carries `link` and the resource's own)."""
        return self.send("POST", resource_path(resource), fields)

    def send(self, method: str, path: str, body: dict[str, Any]) -> UpstreamAnswer:
        """One HTTP call; transport failures raise UpstreamUnavailable with no request data in it."""
        try:
            resp = self.http.request(
                method,
                self.base_url + path,
                json=body,
                auth=self._auth,
                timeout=self.timeout,
                headers={"Accept": "application/json"},
                stream=True,
                allow_redirects=False,
            )
            with resp:
                raw = bytearray()
                for chunk in resp.iter_content(64 * 1024):
                    raw += chunk
                    if len(raw) > self.max_body_bytes:
                        return UpstreamAnswer(resp.status_code, None, False, oversized=True)
        except requests.Timeout:
            raise UpstreamUnavailable("timeout") from None
        except requests.RequestException as exc:
            raise UpstreamUnavailable(type(exc).__name__) from None
        try:
            parsed, is_json = json.loads(raw), True
        except (ValueError, UnicodeDecodeError, RecursionError):  # nesting past the parser's depth: not JSON
            parsed, is_json = None, False
        return UpstreamAnswer(
            resp.status_code, parsed, is_json, _retry_after(resp.headers.get("Retry-After"))
        )
