"""The webhook outbox: events written with the changes that cause them, handed out to the deliverers.

Writing: every session transition writes its event itself (mfa/outbox.lua's library, run inside each
script of mfa/transitions.lua); `Outbox.add` is the same write for a caller's own transaction (an
event that is not a session transition's, e.g. a link event). Either way the event exists exactly
when its change does.

Delivering: the stream mfa:outbox holds one entry per delivery to make; the workers' deliverer threads
read it through the consumer group `deliverers`, so each entry goes to one of them. An entry is
acknowledged and deleted by the script that records its attempt (`settle`), so a deliverer that dies
mid-attempt leaves it pending in the group, and another takes it over (XAUTOCLAIM) once it has been
idle longer than any live attempt lasts. A retry waits in mfa:webhook-retries until the sweeper puts
it back into the stream (`promote`): at least once, under one event id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ResponseError

from mfa.keys import (
    OUTBOX_GROUP,
    OUTBOX_STREAM,
    webhook_attempts_key,
    webhook_key,
    webhook_payload_key,
    webhook_status_key,
)
from mfa.scripts import OUTBOX_SOURCE as SOURCE
from mfa.scripts import bind, generated_header, lua_sections
from mfa.webhooks import DeliveryStatus, event_id, render_payload

log = logging.getLogger(__name__)
_PRELUDE = "local now, retention = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
ScriptArg = str | int | float | bytes


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


@dataclass(frozen=True)
class Entry:
    """One delivery to make: the outbox entry, its event and the destination's index in the event."""

    entry: str
    event: str
    target: int


@dataclass(frozen=True)
class WebhookEvent:
    """An event as stored: what it says, where it goes, and how far each destination's delivery is."""

    id: str
    type: str
    session_id: str | None
    sequence: int
    step: int
    created_at_ms: int
    status: DeliveryStatus
    destinations: tuple[str, ...]
    states: tuple[DeliveryStatus, ...]
    rounds: tuple[int, ...]  # attempts made at each destination since the event (or its redelivery) began
    due_ms: tuple[int | None, ...]  # when each destination's next attempt is due, while one is
    source: str  # what `payload` is: "record" (a session snapshot), "data", or "body" (the bytes sent)
    payload: str

    @classmethod
    def from_hash(cls, event: str, h: Mapping[str, str], payload: str) -> WebhookEvent:
        """Decode the event's hash (decoded to str) and its payload."""
        count = range(int(h["count"]))
        return cls(
            id=event,
            type=h["type"],
            session_id=h.get("session") or None,
            sequence=int(h.get("sequence") or 0),
            step=int(h.get("step") or 0),
            created_at_ms=int(h["created_at"]),
            status=DeliveryStatus(h.get("status", DeliveryStatus.PENDING.value)),
            destinations=tuple(h[f"u{i}"] for i in count),
            states=tuple(DeliveryStatus(h.get(f"s{i}", "pending")) for i in count),
            rounds=tuple(int(h.get(f"n{i}", "0")) for i in count),
            due_ms=tuple(int(h[f"due{i}"]) if h.get(f"due{i}") else None for i in count),
            source=h["source"],
            payload=payload,
        )

    def body(self) -> str:
        """The exact payload: as first sent, or rendered now from the session snapshot or data stored."""
        if self.source == "body":
            return self.payload
        record = json.loads(self.payload) if self.source == "record" else None
        data = json.loads(self.payload) if self.source == "data" else None
        return render_payload(
            self.id, self.type, self.created_at_ms, self.sequence, self.step, record=record, data=data
        )


class Outbox:
    """The outbox's Redis side: add, hand out, settle, retry and redeliver events (mfa/outbox.lua)."""

    def __init__(self, redis: Redis, retention_seconds: int) -> None:
        self.redis = redis
        self.retention_ms = retention_seconds * 1000
        sections = lua_sections(SOURCE)
        head = generated_header() + sections.pop("library")[2] + _PRELUDE
        self._scripts = {
            name: (params, redis.register_script(head + bind(params, False, 3) + body))
            for name, (params, _, body) in sections.items()
        }

    def _run(self, name: str, now_ms: int, client: Pipeline | None = None, **named: ScriptArg) -> Any:
        params, script = self._scripts[name]
        if set(named) != set(params):
            raise TypeError(f"{name}() takes {params}, got {tuple(sorted(named))}")
        args = [now_ms, self.retention_ms, *(named[p] for p in params)]
        return script(keys=[], args=args, client=client)

    def add(
        self,
        pipe: Pipeline,
        *,
        event: str,
        event_type: str,
        data: Any,
        destinations: tuple[str, ...],
        now_ms: int,
        session_id: str = "",
        sequence: int = 0,
        step: int = 0,
    ) -> None:
        """Add an event to `pipe`'s transaction (nothing when there is no destination): the caller's
        change and its event commit together. `event` names the change: adding it twice is a no-op."""
        if not destinations:
            return
        self._run(
            "add",
            now_ms,
            client=pipe,
            event=event,
            type=event_type,
            session=session_id,
            sequence=sequence,
            step=step,
            created_at=now_ms,
            data=json.dumps(data, separators=(",", ":")),
            destinations=json.dumps(list(destinations)),
        )

    def ensure_group(self) -> None:
        """Create the deliverers' group (and the stream) if missing; from the start, so nothing is skipped."""
        try:
            self.redis.xgroup_create(OUTBOX_STREAM, OUTBOX_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _entries(self, raw: Any) -> list[Entry]:
        found = []
        for entry_id, fields in raw or []:
            entry = _text(entry_id)
            if not fields:  # deleted while pending (a settle raced a takeover): nothing left to do
                self.redis.xack(OUTBOX_STREAM, OUTBOX_GROUP, entry)
                continue
            decoded = {_text(k): _text(v) for k, v in fields.items()}
            found.append(Entry(entry, decoded["e"], int(decoded["t"])))
        return found

    def read(self, consumer: str, count: int, block_ms: int | None) -> list[Entry]:
        """New entries for `consumer`, waiting up to `block_ms` for one (None: not at all)."""
        try:
            raw: Any = self.redis.xreadgroup(
                OUTBOX_GROUP, consumer, {OUTBOX_STREAM: ">"}, count=count, block=block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()  # a Redis that lost its data (or a test's flush): start over
            return []
        return [e for _, entries in raw or [] for e in self._entries(entries)]

    def claim(self, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Entries another deliverer has held longer than `min_idle_ms` (it died): now `consumer`'s."""
        try:
            raw = self.redis.xautoclaim(
                OUTBOX_STREAM, OUTBOX_GROUP, consumer, min_idle_ms, "0-0", count=count
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            return []
        return self._entries(raw[1])

    def forget_consumers(self, idle_ms: int, now_ms: int) -> int:
        """Drop consumers holding nothing that have not read for `idle_ms` (their workers are gone)."""
        try:
            return int(self._run("forget_consumers", now_ms, idle=idle_ms))
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            return 0

    def load(self, event: str) -> WebhookEvent | None:
        """The stored event, or None once it has expired."""
        return self.load_many([event])[0]

    def load_many(self, events: list[str]) -> list[WebhookEvent | None]:
        """Each stored event (None where it has expired), in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.hgetall(webhook_key(event))
                pipe.get(webhook_payload_key(event))
            found = pipe.execute()
        return [
            WebhookEvent.from_hash(event, {_text(k): _text(v) for k, v in raw.items()}, _text(payload))
            if raw and payload is not None
            else None
            for event, raw, payload in zip(events, found[::2], found[1::2], strict=True)
        ]

    def settle(
        self,
        entry: Entry,
        *,
        round: int,
        outcome: DeliveryStatus | None,
        due_ms: int | None,
        attempt: dict[str, Any],
        body: str,
        now_ms: int,
    ) -> str:
        """Record one attempt and its outcome (None: retry at `due_ms`), acknowledging its entry."""
        return _text(
            self._run(
                "settle",
                now_ms,
                event=entry.event,
                target=entry.target,
                entry=entry.entry,
                round=round,
                outcome=outcome.value if outcome is not None else "retry",
                due=due_ms or 0,
                attempt=json.dumps(attempt, separators=(",", ":")),
                body=body,
            )
        )

    def ack(self, entry: Entry) -> None:
        """Acknowledge and delete an entry that needs no attempt (its event expired or moved on)."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(OUTBOX_STREAM, OUTBOX_GROUP, entry.entry)
            pipe.xdel(OUTBOX_STREAM, entry.entry)
            pipe.execute()

    def promote(self, member: str, now_ms: int) -> bool:
        """Put a due retry back into the outbox; True if this call did."""
        return bool(self._run("promote", now_ms, member=member))

    def redeliver(self, event: str, now_ms: int) -> int | None:
        """Start a new round of attempts at every destination not pending; None if there is no such event."""
        started = self._run("redeliver", now_ms, event=event)
        return None if started is None else int(started)

    def attempts(self, events: list[str]) -> list[list[dict[str, Any]]]:
        """Each event's logged attempts, oldest first, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.lrange(webhook_attempts_key(event), 0, -1)
            found = pipe.execute()
        return [[json.loads(raw) for raw in logged] for logged in found]

    def session_events(self, session_id: str, version: int) -> list[WebhookEvent]:
        """The events of a session now at `version`, oldest first: one id per version, found by id."""
        ids = [event_id(session_id, v) for v in range(1, version + 1)]
        return [e for e in self.load_many(ids) if e is not None]

    def status_index(self, status: DeliveryStatus) -> str:
        """The zset listing events by `status` (mfa/keys.py)."""
        return webhook_status_key(status.value)
