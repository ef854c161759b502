"""Test clients for the service and the sandbox, and the one settings dict every test stack starts from.

`Api` speaks real HTTP to a running web process; `InProcessApi` (tests/inprocess.py) sends the same
requests through Flask's test client, so a test reads the same whichever tier it runs in.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, replace
from typing import Any

import requests
from redis import Redis

FINAL = {"succeeded", "failed", "expired", "cancelled"}
API_KEY = "test-api-key-0123456789abcdef-0123"  # API keys are at least 32 characters
SECOND_API_KEY = "test-api-key-rotated-fedcba9876543210"
BELVO_SECRET_ID = "sandbox-secret-id"
BELVO_SECRET_PASSWORD = "sandbox-secret-password-for-tests"
# The Authorization header Belvo's webhooks carry (set in Belvo's dashboard; BELVO_WEBHOOK_AUTHORIZATION).
BELVO_WEBHOOK_AUTHORIZATION = "Bearer belvo-webhooks-for-tests-5f1c0d2a"
# A Standard Webhooks signing secret (whsec_ + base64 of 32 bytes), and a receiver's settings on loopback.
WEBHOOK_SECRET = "whsec_dGVzdC13ZWJob29rLXNpZ25pbmcta2V5LTMyLWJ5dGVzIQ=="
WEBHOOK_LOOPBACK_ENV = {
    "WEBHOOK_SECRETS": WEBHOOK_SECRET,
    "WEBHOOK_ALLOW_HTTP": "1",  # a test receiver speaks plain HTTP
    "WEBHOOK_ALLOW_PRIVATE": "1",  # on 127.0.0.1
}
# Fixed sealing key pairs (python -m mfa.sealing): the web seals tokens and credentials to
# SEALING_PUBLIC_KEY and opens results with RESULT_PRIVATE_KEYS; the worker holds the other halves.
SEALING_PUBLIC_KEY = "mfa-pk-TyTRb1tOWb3nQL4xsm5lKiGmECsxHvrsQcRwK81PPGo"
SEALING_PRIVATE_KEY = "mfa-sk-KJ67pjVt3sZoKcR-SRqMj5RFcC_ceLh8pZUiXl8HrsQ"
RESULT_PUBLIC_KEY = "mfa-pk-6qGyTC3HwRi7vkEXB4kry2Ik8qIEFAYBinii-d2rFwU"
RESULT_PRIVATE_KEY = "mfa-sk-77LeN_lFQStu81EeRFJwEHivzQtRHrsVhrkCIaoOPpI"

# Every test Redis runs with the service's ACL users (mfa/acl.py): the web and the worker log in as their
# own users, so a command the code sends without a grant fails the suite. The tests' own clients log in
# as the `default` user, an administrator with this password; no client gets in without one.
REDIS_PASSWORDS = {
    "web": "test-redis-web-password-0123456789",
    "worker": "test-redis-worker-password-0123456789",
    "replica": "test-redis-replica-password-0123456789",
    "sentinel": "test-redis-sentinel-password-0123456789",
}
REDIS_ADMIN_PASSWORD = "test-redis-admin-password-0123456789"

# The service's settings in every test stack, in-process or real processes: short timings, so faults
# end quickly; no rate limits, so bursts measure the state machine only. Stacks add REDIS_URL and
# BELVO_BASE_URL, and a test overrides what it is about. Each process gets only its own share
# (mfa.settings.role_env): the web never sees the worker's private key, nor the worker the web's.
SERVICE_ENV = {
    "API_KEYS": f"{API_KEY},{SECOND_API_KEY}",
    "BELVO_SECRET_ID": BELVO_SECRET_ID,
    "BELVO_SECRET_PASSWORD": BELVO_SECRET_PASSWORD,
    "BELVO_WEBHOOK_AUTHORIZATION": BELVO_WEBHOOK_AUTHORIZATION,
    "SEALING_PUBLIC_KEY": SEALING_PUBLIC_KEY,
    "SEALING_PRIVATE_KEYS": SEALING_PRIVATE_KEY,
    "RESULT_PUBLIC_KEY": RESULT_PUBLIC_KEY,
    "RESULT_PRIVATE_KEYS": RESULT_PRIVATE_KEY,
    "UPSTREAM_TIMEOUT_SECONDS": "1",
    "RESUME_MAX_ATTEMPTS": "3",
    "RESUME_BACKOFF_SECONDS": "0.1",
    "LEASE_SECONDS": "2",
    "SWEEP_INTERVAL_SECONDS": "0.1",
    "SESSION_RETENTION_SECONDS": "3600",
    "RATE_LIMIT_PER_MINUTE": "0",
    "SESSION_RATE_LIMIT_PER_MINUTE": "0",
    "AUTH_FAILURE_LIMIT_PER_MINUTE": "0",
    "LOG_LEVEL": "INFO",
}


@dataclass
class Sandbox:
    """The Belvo sandbox's control API."""

    url: str

    def pause(self, resource: str = "links", token_type: str = "numeric", **extra: Any) -> Any:
        """A fresh paused session: the 428 body Belvo would send."""
        r = requests.post(
            f"{self.url}/_sandbox/sessions",
            json={"resource": resource, "token_type": token_type, **extra},
            timeout=5,
        )
        r.raise_for_status()
        return r.json()

    def fault(self, mode: str, **spec: Any) -> None:
        r = requests.post(f"{self.url}/_sandbox/faults", json={"mode": mode, **spec}, timeout=5)
        r.raise_for_status()

    def calls(self, **filters: str) -> list[dict[str, Any]]:
        r = requests.get(f"{self.url}/_sandbox/calls", params=filters, timeout=5)
        r.raise_for_status()
        return r.json()

    def webhook(self, url: str, link: str, **spec: Any) -> dict[str, Any]:
        """Have the sandbox send Belvo's LINK webhook for `link` to `url` (loopback); what it got back."""
        r = requests.post(
            f"{self.url}/_sandbox/webhooks", json={"url": url, "link": link, **spec}, timeout=10
        )
        r.raise_for_status()
        return r.json()

    def configure(self, **config: Any) -> None:
        requests.put(f"{self.url}/_sandbox/config", json=config, timeout=5).raise_for_status()

    def reset(self) -> None:
        requests.post(f"{self.url}/_sandbox/reset", timeout=5).raise_for_status()


def first(pause: Any) -> dict[str, Any]:
    """The token-required object of a 428 body, list or object."""
    return pause[0] if isinstance(pause, list) else pause


@dataclass
class Api:
    """The service's HTTP API, authenticated with a backend API key unless told otherwise."""

    url: str
    api_key: str = API_KEY

    def request(self, method: str, path: str, credential: str | None = "", **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        cred = self.api_key if credential == "" else credential
        if cred is not None:
            headers["Authorization"] = f"Bearer {cred}"
        return self.send(method, path, headers, **kw)

    def send(self, method: str, path: str, headers: dict[str, str], **kw: Any) -> Any:
        """One request; the in-process tier sends it through Flask's test client instead."""
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def tick(self) -> None:
        """Let the service move on while a test waits: real processes do so by themselves."""

    def as_key(self, api_key: str) -> Api:
        """The same service, called with another API key."""
        return replace(self, api_key=api_key)

    def create(self, token_required: Any, **body: Any) -> requests.Response:
        return self.request("POST", "/v1/sessions", json={"token_required": token_required, **body})

    def created(self, token_required: Any, **body: Any) -> dict[str, Any]:
        r = self.create(token_required, **body)
        assert r.status_code == 201, r.text
        return r.json()

    def get(self, session_id: str, credential: str | None = "") -> requests.Response:
        return self.request("GET", f"/v1/sessions/{session_id}", credential)

    def submit(
        self, session_id: str, token: str | None = "111111", credential: str | None = "", **kw: Any
    ) -> requests.Response:
        body = {} if token is None else {"token": token}
        return self.request("POST", f"/v1/sessions/{session_id}/token", credential, json=body, **kw)

    def cancel(self, session_id: str, credential: str | None = "") -> requests.Response:
        return self.request("POST", f"/v1/sessions/{session_id}/cancel", credential)

    def wait(
        self, session_id: str, statuses: set[str] | None = None, timeout: float = 30, step: int | None = None
    ) -> dict[str, Any]:
        """Poll the session until its status is in `statuses` (default: final) and, if given, at `step`."""
        wanted = statuses or FINAL
        deadline = time.monotonic() + timeout
        while True:
            self.tick()
            body = self.get(session_id).json()
            if body["status"] in wanted and (step is None or body["step"] == step):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"session stayed {body['status']} (step {body['step']}): {body}")
            time.sleep(0.02)


def redis_values(client: Redis) -> list[bytes]:
    """Every key name and value of every type; zlib-compressed values (RQ's job data) are inflated too."""
    found: list[bytes] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            values = [client.get(key)]
        elif kind == b"hash":
            values = [item for pair in client.hgetall(key).items() for item in pair]
        elif kind == b"list":
            values = client.lrange(key, 0, -1)
        elif kind == b"set":
            values = list(client.smembers(key))
        elif kind == b"zset":
            values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            values = [item for _, fields in client.xrange(key) for pair in fields.items() for item in pair]
        elif kind == b"none":  # expired since the scan saw it
            continue
        else:
            raise AssertionError(f"{key!r} has a type this test does not read: {kind!r}")
        found += [key, *inflated(values)]
    return found


def inflated(values: list[bytes | None]) -> list[bytes]:
    """The values, and beside each zlib-compressed one (RQ's job data, exc_info) its inflated bytes."""
    out = []
    for value in values:
        if value is None:
            continue
        out.append(value)
        try:
            out.append(zlib.decompress(value))
        except zlib.error:
            pass
    return out


def acl_denials(admin: Redis) -> list[dict[str, Any]]:
    """Redis's ACL LOG of refused commands, keys and channels (failed logins left out), then emptied."""
    entries = admin.acl_log()
    admin.acl_log_reset()
    return [entry for entry in entries if entry.get("reason") != "auth"]


def assert_no_acl_denials(admin: Redis) -> None:
    """Fail, naming each refused command, if any ACL user was refused anything."""
    try:
        denied = acl_denials(admin)
    finally:
        admin.close()
    assert not denied, [(e.get("username"), e.get("object"), e.get("reason")) for e in denied]
