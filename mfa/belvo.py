"""Belvo's HTTP API as this service uses it: register, update and look up links, retrieve, resume."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Literal

import requests
from requests.adapters import HTTPAdapter

from mfa import logs

# Belvo's resources with a data call that can pause for MFA, resumed by a PATCH of the same collection;
# `links` has the register (and update) call instead. employment-records has no PATCH in the spec, but
# its data call can answer 428 and belvo-python's resume PATCHes its collection as for any resource.
DataResource = Literal[
    "accounts",
    "transactions",
    "balances",
    "owners",
    "invoices",
    "incomes",
    "recurring-expenses",
    "risk-insights",
    "employment-records",
    "investments/portfolios",
]
Resource = Literal["links", DataResource]  # nested Literals flatten: one enum, so errors name `resource`
# Resumes whose body has no save_data (the spec's PatchBodyWithoutSaveData).
WITHOUT_SAVE_DATA = frozenset({"links", "investments/portfolios"})
# What a successful answer's body is, by resource, as the spec gives it; where the spec is inconsistent
# (incomes: its POST answers one object, its PATCH a list), either. Everything else is a list.
RESULT_SHAPES: dict[str, tuple[type, ...]] = {
    "links": (dict,),
    "investments/portfolios": (dict,),
    "incomes": (dict, list),
}
MAX_BODY_BYTES = 10 * 1024 * 1024  # the default read cap; the worker passes RESULT_MAX_BYTES
LINKS_PAGE_SIZE = 100


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

    @property
    def request_id(self) -> str | None:
        """Belvo's own id of the request, where its body carries one (errors, 428s), for the logs."""
        first = self.body[0] if isinstance(self.body, list) and self.body else self.body
        found = first.get("request_id") if isinstance(first, dict) else None
        return found if isinstance(found, str) and logs.REQUEST_ID.fullmatch(found) else None


def resource_path(resource: str) -> str:
    """Belvo's path for a resource; investments/portfolios lives outside /api/."""
    if resource == "investments/portfolios":
        return "/investments/portfolios/"
    return f"/api/{resource}/"


def well_formed_result(resource: str, body: Any) -> bool:
    """Whether a 2xx body has the shape Belvo's spec gives the resource (a link object has an id)."""
    if not isinstance(body, RESULT_SHAPES.get(resource, (list,))):
        return False
    return resource != "links" or (isinstance(body, dict) and "id" in body)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def pooled_http(connections: int) -> requests.Session:
    """An HTTP session for `connections` calls at once: that many kept-alive connections per host, no cookies.

    requests keeps 10 connections per host by default and throws away every one beyond that after its
    call, so a worker with more calls in flight would reconnect (and redo TLS) for most of them. Every
    call thread shares this session: its connection pool (urllib3) is thread-safe, and nothing changes
    the session once built: no cookie is kept (Belvo authenticates each call with basic auth, and a
    cookie would be shared by every user's calls) and no redirect is followed (BelvoClient.send).
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=connections)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


def _headers() -> dict[str, str]:
    """Every call says it wants JSON, and carries the id of the API request it serves (Belvo ignores it)."""
    request_id = logs.current("request_id")
    if isinstance(request_id, str) and logs.REQUEST_ID.fullmatch(request_id):
        return {"Accept": "application/json", "X-Request-ID": request_id}
    return {"Accept": "application/json"}


class BelvoClient:
    """HTTP basic auth, JSON in and out, a timeout on every call; safe to share between threads."""

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
        if save_data is not None and resource not in WITHOUT_SAVE_DATA:
            body["save_data"] = save_data
        return self.send("PATCH", resource_path(resource), body)

    def register(self, fields: dict[str, Any]) -> UpstreamAnswer:
        """POST /api/links/: register a link with the end user's bank credentials."""
        return self.send("POST", "/api/links/", fields)

    def update_link(self, link_id: str, fields: dict[str, Any]) -> UpstreamAnswer:
        """PUT /api/links/{id}/: new credentials for a link (or the same, to log in again); may answer 428."""
        return self.send("PUT", f"/api/links/{link_id}/", fields)

    def find_links(self, *, external_id: str, institution: str) -> UpstreamAnswer:
        """GET /api/links/ filtered by external_id and institution: one page, Belvo's paginated shape."""
        query = {"external_id": external_id, "institution": institution, "page_size": LINKS_PAGE_SIZE}
        return self.send("GET", "/api/links/", None, params=query)

    def retrieve(self, resource: str, fields: dict[str, Any]) -> UpstreamAnswer:
        """POST /api/{resource}/: retrieve a link's data (`fields` carries `link` and the resource's own)."""
        return self.send("POST", resource_path(resource), fields)

    def send(
        self, method: str, path: str, body: dict[str, Any] | None, params: dict[str, Any] | None = None
    ) -> UpstreamAnswer:
        """One HTTP call; transport failures raise UpstreamUnavailable with no request data in it."""
        try:
            resp = self.http.request(
                method,
                self.base_url + path,
                json=body,
                params=params,
                auth=self._auth,
                timeout=self.timeout,
                headers=_headers(),
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
