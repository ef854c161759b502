"""Webhooks to the backend, as the Standard Webhooks specification says: settings, events, signing, retries.

Each event is signed with every secret in WEBHOOK_SECRETS (`webhook-signature: v1,<b64> v1,<b64>`), so
a receiver holding any one of them verifies it during a rotation. An event's id is stable across its
attempts (`webhook-id`), so a receiver de-duplicates on it; `sequence` orders one session's events.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from standardwebhooks.webhooks import Webhook

from mfa.errors import ConfigError
from mfa.session import Audience, MfaSession, SessionStatus, rfc3339

# Standard Webhooks' recommended schedule: the waits between attempts (8 attempts over about 28 h).
DEFAULT_SCHEDULE = "5s,5m,30m,2h,5h,10h,10h"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of a secret, not one
SECRET_BYTES = (24, 64)  # the specification's bounds on a secret's length
MAX_RETRY_AFTER_SECONDS = 86400.0  # a receiver's Retry-After is honoured up to a day
JITTER = 0.1  # each wait is stretched or shrunk by up to 10%, so retries of many events spread out
ATTEMPTS_KEPT = 50  # delivery attempts logged per event, the newest
# An event nobody has settled outlives the session's retention by this much: a week without workers.
OUTBOX_GRACE_MS = 7 * 86400 * 1000
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_WAIT = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")


class EventType(str, Enum):
    """What a webhook event tells the backend."""

    AWAITING_TOKEN = "session.awaiting_token"  # noqa: S105 - an event name, not a secret
    SUCCEEDED = "session.succeeded"
    FAILED = "session.failed"
    EXPIRED = "session.expired"
    CANCELLED = "session.cancelled"


class DeliveryStatus(str, Enum):
    """Where an event's delivery to a destination stands (and, across its destinations, the event's)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# The event a change to each status makes (mfa/transitions.lua gets this table in its header). A session
# entering another status (submitted, registering, retrieving) tells the backend nothing new.
EVENT_BY_STATUS = {
    SessionStatus.AWAITING_TOKEN: EventType.AWAITING_TOKEN,
    SessionStatus.SUCCEEDED: EventType.SUCCEEDED,
    SessionStatus.FAILED: EventType.FAILED,
    SessionStatus.EXPIRED: EventType.EXPIRED,
    SessionStatus.CANCELLED: EventType.CANCELLED,
}


def event_id(session_id: str, version: int) -> str:
    """A session event's id: one per version of the session, so the same change is never two events."""
    return f"evt_{session_id.removeprefix('mfa_')}_{version}"


def parse_schedule(raw: str) -> tuple[float, ...]:
    """WEBHOOK_RETRY_SCHEDULE: waits between attempts, comma-separated, in seconds or with s, m or h."""
    waits = []
    for part in raw.split(","):
        match = _WAIT.match(part.strip())
        if not match:
            raise ConfigError(
                f"WEBHOOK_RETRY_SCHEDULE: {part.strip()!r} is not a wait such as 5, 5s, 5m or 2h"
            )
        waits.append(float(match.group(1)) * _UNITS[match.group(2)])
    return tuple(waits)


def parse_secret(raw: str) -> bytes:
    """A `whsec_<base64>` secret's key bytes; ConfigError unless it is 24 to 64 bytes."""
    if not raw.startswith(SECRET_PREFIX):
        raise ConfigError(f"WEBHOOK_SECRETS: each secret starts with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(raw[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("WEBHOOK_SECRETS: a secret is not valid base64 after whsec_") from None
    if not SECRET_BYTES[0] <= len(key) <= SECRET_BYTES[1]:
        raise ConfigError(f"WEBHOOK_SECRETS: a secret must be {SECRET_BYTES[0]} to {SECRET_BYTES[1]} bytes")
    return key


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


@dataclass(frozen=True)
class WebhookSettings:
    """WEBHOOK_* settings; see the README's Webhooks section."""

    url: str = ""
    secrets: tuple[bytes, ...] = field(default=(), repr=False)
    schedule: tuple[float, ...] = parse_schedule(DEFAULT_SCHEDULE)
    timeout_seconds: float = 10.0
    concurrency: int = 4
    allow_http: bool = False
    allow_private: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookSettings:
        """Read and check the WEBHOOK_* variables."""
        try:
            timeout = float(env.get("WEBHOOK_TIMEOUT_SECONDS", "").strip() or 10.0)
            concurrency = int(env.get("WEBHOOK_CONCURRENCY", "").strip() or 4)
        except ValueError:
            raise ConfigError("WEBHOOK_TIMEOUT_SECONDS and WEBHOOK_CONCURRENCY must be numbers") from None
        if not 0.1 <= timeout <= 60:
            raise ConfigError("WEBHOOK_TIMEOUT_SECONDS must be between 0.1 and 60")
        if not 1 <= concurrency <= 64:
            raise ConfigError("WEBHOOK_CONCURRENCY must be between 1 and 64")
        raw_secrets = [s.strip() for s in env.get("WEBHOOK_SECRETS", "").split(",") if s.strip()]
        return cls(
            url=env.get("WEBHOOK_URL", "").strip(),
            secrets=tuple(parse_secret(s) for s in raw_secrets),
            schedule=parse_schedule(env.get("WEBHOOK_RETRY_SCHEDULE", "").strip() or DEFAULT_SCHEDULE),
            timeout_seconds=timeout,
            concurrency=concurrency,
            allow_http=_flag(env, "WEBHOOK_ALLOW_HTTP"),
            allow_private=_flag(env, "WEBHOOK_ALLOW_PRIVATE"),
        )

    @property
    def claim_idle_ms(self) -> int:
        """How long a delivery may sit with one deliverer before another takes it over: longer than any
        live attempt (connect + read timeouts, and the Redis work), so only a dead worker's are taken."""
        return int((2 * self.timeout_seconds + 2) * 1000)


class Signer:
    """Signs a payload with every active secret, through the standardwebhooks library."""

    def __init__(self, secrets: tuple[bytes, ...]) -> None:
        if not secrets:
            raise ConfigError("WEBHOOK_SECRETS is required to deliver webhooks")
        self._hooks = [Webhook(secret) for secret in secrets]

    def headers(self, event: str, at_seconds: int, body: str) -> dict[str, str]:
        """The Standard Webhooks headers of one attempt: id, timestamp, one signature per secret."""
        when = datetime.fromtimestamp(at_seconds, tz=timezone.utc)
        return {
            "webhook-id": event,
            "webhook-timestamp": str(at_seconds),
            "webhook-signature": " ".join(hook.sign(event, when, body) for hook in self._hooks),
        }


def next_attempt_at(
    schedule: tuple[float, ...], attempt: int, retry_after: float | None, now_ms: int
) -> int | None:
    """When attempt `attempt + 1` is due (ms), or None once the schedule is spent.

    The schedule's wait with jitter, and never before the receiver's Retry-After (capped at a day).
    """
    if attempt > len(schedule):
        return None
    wait = schedule[attempt - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return now_ms + int(wait * 1000)


def render_payload(
    event: str,
    event_type: str,
    created_at_ms: int,
    sequence: int,
    step: int,
    *,
    record: Mapping[str, str] | None = None,
    data: Any = None,
) -> str:
    """The body of an event: the session as the API key sees it (from its record), or given `data`.

    A session's record never holds Belvo's result (it is sealed apart, for the web alone: mfa/sealing.py),
    so `data.outcome.result` is null: a webhook never carries bank data; the backend reads the session.
    """
    if record is not None:
        data = MfaSession.from_record(record).public(created_at_ms, Audience.BACKEND)
    payload = {
        "id": event,
        "type": event_type,
        "created_at": rfc3339(created_at_ms),
        "sequence": sequence,
        "step": step,
        "data": data,
    }
    return json.dumps(payload, separators=(",", ":"))
