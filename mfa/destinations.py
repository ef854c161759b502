"""Where webhooks may go, and the one HTTP client that sends them: no SSRF.

A destination URL is checked twice. When a backend gives it (a session's callback_url), its host is
resolved and every address must be public; at delivery, the address the socket actually connected to
is checked before a byte is sent, so a name that resolves elsewhere by then (DNS rebinding) is refused
too. Refused: loopback, private, link-local, multicast, unspecified and reserved addresses, shared
address space, cloud metadata endpoints, and IPv6 forms that embed such an IPv4 address, unless
WEBHOOK_ALLOW_PRIVATE=1. Redirects are never followed; the receiver's body is read to a small cap.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

MAX_URL_LENGTH = 2048
BODY_CAP_BYTES = 4096  # what we read of a receiver's answer: enough to reuse the connection, no more
USER_AGENT = "belvo-mfa-sessions-webhooks/1"
# Cloud metadata services, refused even where another rule would let them through (168.63.129.16 is a
# public address: Azure's wire server).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "168.63.129.16", "fd00:ec2::254")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeDestination(Exception):
    """A destination refused by the policy; the message says why, naming no secret."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(address: str) -> str | None:
    """Why an address may not receive webhooks (None: it may)."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone index
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            found = refusal(str(inner))
            return f"{found} (embedded in {ip})" if found else None
    if ip in METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


@dataclass(frozen=True)
class DestinationPolicy:
    """WEBHOOK_ALLOW_HTTP and WEBHOOK_ALLOW_PRIVATE, applied to URLs and addresses."""

    allow_http: bool = False
    allow_private: bool = False

    def check_url(self, url: str) -> str:
        """The URL if its form may receive webhooks: https (http if allowed), a host, no credentials."""
        if len(url) > MAX_URL_LENGTH:
            raise UnsafeDestination(f"the URL is longer than {MAX_URL_LENGTH} characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise UnsafeDestination("not a valid URL") from None
        schemes = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in schemes:
            raise UnsafeDestination(f"the URL must start with {' or '.join(s + '://' for s in schemes)}")
        if not parts.hostname or any(c.isspace() for c in url):
            raise UnsafeDestination("the URL has no valid host")
        if parts.username is not None or parts.password is not None:
            raise UnsafeDestination("the URL may not carry credentials")
        if parts.fragment:
            raise UnsafeDestination("the URL may not have a fragment")
        if port == 0:
            raise UnsafeDestination("the URL's port must be 1 to 65535")
        return url

    def check_address(self, address: str) -> None:
        """UnsafeDestination unless the address may receive webhooks."""
        if self.allow_private:
            return
        reason = refusal(address)
        if reason:
            raise UnsafeDestination(reason)

    def check_destination(self, url: str) -> str:
        """check_url, then every address its host resolves to now; a name that does not resolve yet
        passes (the delivery checks the address it connects to in any case)."""
        self.check_url(url)
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return url
        for info in infos:
            self.check_address(str(info[4][0]))
        return url


def _checked_peer(conn: HTTPConnection, sock: socket.socket) -> socket.socket:
    try:
        conn.policy.check_address(str(sock.getpeername()[0]))  # type: ignore[attr-defined]
    except UnsafeDestination:
        sock.close()
        raise
    return sock


class _CheckedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _checked_peer(self, super()._new_conn())


class _CheckedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _checked_peer(self, super()._new_conn())


@dataclass(frozen=True)
class Answer:
    """What one attempt got: an HTTP status, or an error (timeout, refused, unsafe destination)."""

    status: int | None
    error: str | None
    duration_ms: int
    retry_after: float | None = None

    @property
    def refused(self) -> bool:
        """The policy refused the destination: no request was sent."""
        return self.error is not None and self.error.startswith("destination refused")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class WebhookSender:
    """POSTs signed payloads: connect and read timeouts, no redirects, no retries inside, capped reads."""

    def __init__(self, policy: DestinationPolicy, timeout_seconds: float, max_pools: int = 64) -> None:
        self.policy = policy
        self.timeout = urllib3.Timeout(connect=min(5.0, timeout_seconds), read=timeout_seconds)
        self.http = urllib3.PoolManager(num_pools=max_pools, retries=False, timeout=self.timeout)
        if not policy.allow_private:
            pools: dict[str, Any] = {}
            for scheme, pool, conn in (
                ("http", HTTPConnectionPool, _CheckedHTTPConnection),
                ("https", HTTPSConnectionPool, _CheckedHTTPSConnection),
            ):
                checked = type(f"Checked{conn.__name__}", (conn,), {"policy": policy})
                pools[scheme] = type(f"Checked{pool.__name__}", (pool,), {"ConnectionCls": checked})
            self.http.pool_classes_by_scheme = pools

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """One attempt; never raises for what the network or the receiver does."""
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            self.policy.check_url(url)
            resp = self.http.request(
                "POST",
                url,
                body=body,
                headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
                redirect=False,
                retries=False,
                preload_content=False,
            )
        except UnsafeDestination as exc:
            return Answer(None, f"destination refused: {exc}", took())
        except urllib3.exceptions.NameResolutionError:
            return Answer(None, "connection error: the host did not resolve", took())
        except urllib3.exceptions.NewConnectionError:  # a ConnectTimeoutError to urllib3: test it first
            return Answer(None, "connection error: refused or unreachable", took())
        except urllib3.exceptions.TimeoutError:
            return Answer(None, "timeout", took())
        except urllib3.exceptions.HTTPError as exc:
            return Answer(None, f"connection error: {type(exc).__name__}", took())
        whole = False
        try:
            whole = len(resp.read(BODY_CAP_BYTES)) < BODY_CAP_BYTES
        except urllib3.exceptions.HTTPError:
            pass  # the status is what counts; an unreadable body does not change it
        finally:
            if not whole:  # a body beyond the cap is never read: drop the connection rather than drain it
                resp.close()
            resp.release_conn()
        return Answer(resp.status, None, took(), _retry_after(resp.headers.get("Retry-After")))
