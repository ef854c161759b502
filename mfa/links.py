"""What Belvo tells us about links: its webhooks, each recorded once and readable per link.

Belvo refreshes recurrent links by itself; when the bank wants the user again it sends a LINK webhook
(`webhook_code` token_required or invalid_credentials) and the backend re-authenticates the link
(POST /v1/links/{id}/update). Keys (mfa/keys.py):
  mfa:link-events:{link}                  stream of the link's events, oldest first, MAXLEN ~ EVENTS_KEPT
  mfa:belvo-webhook:{sha256(webhook_id)}  marker of a webhook already recorded -> its link id

record() is one WATCH/MULTI transaction: the marker and the stream entry are written together or not
at all, so a webhook Belvo delivers twice (same webhook_id) is recorded exactly once. Its `also`
callback adds to that same transaction: whatever must happen exactly when an event is recorded (an
outbox of outgoing `link.*` webhooks, say) is written there, with the event, or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError

from mfa.keys import belvo_webhook_key, link_events_key
from mfa.session import rfc3339

EVENTS_KEPT = 100  # per link (MAXLEN ~): a link is re-authenticated long before it has this many


@dataclass(frozen=True)
class LinkEvent:
    """One Belvo webhook about a link, as received (`data` kept as Belvo sent it)."""

    webhook_id: str
    webhook_type: str
    webhook_code: str
    link_id: str
    external_id: str | None = None
    request_id: str | None = None
    process_type: str | None = None
    data: Any = None
    received_at_ms: int = 0
    id: str | None = None  # the stream entry's id, once stored

    def to_fields(self) -> dict[str, str]:
        """The stream entry's fields (empty ones left out)."""
        fields = {
            "webhook_id": self.webhook_id,
            "webhook_type": self.webhook_type,
            "webhook_code": self.webhook_code,
            "link_id": self.link_id,
            "external_id": self.external_id or "",
            "request_id": self.request_id or "",
            "process_type": self.process_type or "",
            "data": json.dumps(self.data, separators=(",", ":")) if self.data is not None else "",
            "received_at": str(self.received_at_ms),
        }
        return {name: value for name, value in fields.items() if value != ""}

    @classmethod
    def from_entry(cls, entry_id: str, fields: Mapping[str, str]) -> LinkEvent:
        """Decode a stream entry (decoded to str)."""
        return cls(
            webhook_id=fields["webhook_id"],
            webhook_type=fields["webhook_type"],
            webhook_code=fields["webhook_code"],
            link_id=fields["link_id"],
            external_id=fields.get("external_id") or None,
            request_id=fields.get("request_id") or None,
            process_type=fields.get("process_type") or None,
            data=json.loads(fields["data"]) if fields.get("data") else None,
            received_at_ms=int(fields.get("received_at", "0")),
            id=entry_id,
        )

    def public(self) -> dict[str, Any]:
        """The API's link event object."""
        return {
            "id": self.id,
            "received_at": rfc3339(self.received_at_ms),
            "webhook_id": self.webhook_id,
            "webhook_type": self.webhook_type,
            "webhook_code": self.webhook_code,
            "link_id": self.link_id,
            "external_id": self.external_id,
            "request_id": self.request_id,
            "process_type": self.process_type,
            "data": self.data,
        }


@dataclass(frozen=True)
class Recorded:
    """What record() did: the event as stored (`duplicate`: it had been recorded before)."""

    event: LinkEvent
    duplicate: bool


# Called inside record()'s MULTI with the pipeline and the event: anything it queues commits with it.
AlsoInTransaction = Callable[[Pipeline, LinkEvent], None]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class LinkEvents:
    """Records Belvo's link webhooks once each, and reads them back per link."""

    def __init__(self, redis: Redis, retention_seconds: int) -> None:
        self.redis = redis
        self.retention_ms = retention_seconds * 1000

    def record(self, event: LinkEvent, now_ms: int, also: AlsoInTransaction | None = None) -> Recorded:
        """Store `event` unless its webhook_id was recorded before; `also` joins the same transaction."""
        marker = belvo_webhook_key(event.webhook_id)
        stream = link_events_key(event.link_id)
        event = replace(event, received_at_ms=now_ms)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(marker)  # type: ignore[no-untyped-call]
                    seen = pipe.get(marker)
                    if seen is not None:
                        pipe.unwatch()
                        return Recorded(self._earlier(_text(seen), event), duplicate=True)
                    pipe.multi()
                    pipe.xadd(stream, event.to_fields(), maxlen=EVENTS_KEPT, approximate=True)  # type: ignore[arg-type]
                    pipe.pexpire(stream, self.retention_ms)
                    pipe.set(marker, event.link_id, px=self.retention_ms)
                    if also is not None:
                        also(pipe, event)
                    entry_id = pipe.execute()[0]
                    return Recorded(replace(event, id=_text(entry_id)), duplicate=False)
                except WatchError:
                    continue  # another delivery of the same webhook raced us: read its marker again

    def _earlier(self, link_id: str, event: LinkEvent) -> LinkEvent:
        """The stored event of an earlier delivery (the new one if it has since been trimmed away)."""
        for stored in reversed(self.for_link(link_id)):
            if stored.webhook_id == event.webhook_id:
                return stored
        return event

    def for_link(self, link_id: str) -> list[LinkEvent]:
        """The link's events, oldest first."""
        entries = self.redis.xrange(link_events_key(link_id)) or []
        return [
            LinkEvent.from_entry(_text(entry_id), {_text(k): _text(v) for k, v in (fields or {}).items()})
            for entry_id, fields in entries
        ]
