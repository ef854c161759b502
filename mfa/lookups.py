"""Reads by index, newest first, a page at a time: sessions by external_ref, webhook events by status.

Each index is a sorted set scored by a time in ms (mfa/keys.py), written in the transaction that makes
the thing it lists, so no read ever scans keys. A page's cursor is the last item's "score:member";
the next page starts strictly after it, so items added meanwhile never shift a page. An index may
still list a session or event whose own keys have expired: it is skipped and dropped from the index.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis import Redis

from mfa.keys import ref_key, session_key
from mfa.session import MfaSession

CURSOR_PATTERN = r"^[0-9]{1,16}:[A-Za-z0-9_.-]{1,100}$"
_CURSOR = re.compile(CURSOR_PATTERN)
T = TypeVar("T")


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the score and member of its last item."""

    score: int
    member: str

    @classmethod
    def parse(cls, raw: str) -> Cursor:
        """A cursor from its text (ValueError unless it has the published pattern)."""
        if not _CURSOR.match(raw):
            raise ValueError("not a cursor")
        score, member = raw.split(":", 1)
        return cls(int(score), member)

    def __str__(self) -> str:
        return f"{self.score}:{self.member}"


def newest_first(redis: Redis, key: str, limit: int, after: Cursor | None) -> list[tuple[str, int]]:
    """Up to `limit` (member, score) pairs of a zset, highest score first, strictly after `after`."""
    found: list[tuple[str, int]] = []
    top: float | int = float("inf") if after is None else after.score
    offset = 0
    while len(found) < limit:
        batch: Any = redis.zrevrangebyscore(key, top, "-inf", start=offset, num=limit, withscores=True)
        if not batch:
            break
        offset += len(batch)
        for raw, raw_score in batch:
            member, score = raw.decode() if isinstance(raw, bytes) else str(raw), int(raw_score)
            # Equal scores are listed by member, descending: the ones at or above the cursor came before.
            if after is not None and score == after.score and member >= after.member:
                continue
            found.append((member, score))
            if len(found) == limit:
                break
    return found


def page_of(
    redis: Redis,
    key: str,
    limit: int,
    after: Cursor | None,
    load: Callable[[list[str]], list[T | None]],
) -> tuple[list[T], str | None]:
    """One page of an index: `load` turns members into items (None: gone, dropped from the index)."""
    listed = newest_first(redis, key, limit, after)
    loaded = load([member for member, _ in listed]) if listed else []
    gone = [member for (member, _), item in zip(listed, loaded, strict=True) if item is None]
    if gone:
        redis.zrem(key, *gone)
    items = [item for item in loaded if item is not None]
    cursor = str(Cursor(listed[-1][1], listed[-1][0])) if len(listed) == limit else None
    return items, cursor


def sessions_by_ref(
    redis: Redis, external_ref: str, limit: int, after: Cursor | None
) -> tuple[list[MfaSession], str | None]:
    """The sessions created with `external_ref`, newest first (mfa:ref:{ref}, written at creation)."""

    def load(ids: list[str]) -> list[MfaSession | None]:
        with redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hgetall(session_key(session_id))
            found = pipe.execute()
        return [
            MfaSession.from_record({k.decode(): v.decode() for k, v in raw.items()}) if raw else None
            for raw in found
        ]

    return page_of(redis, ref_key(external_ref), limit, after, load)
