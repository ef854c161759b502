"""Live status: following a session's changes as they happen, for a stream or a long-poll.

Both wait on the process's change feed (mfa/feed.py) and read what changed from the session's change log
(mfa:events:{id}, one entry per version), so a reader sees every version after the one it holds, in
order, whichever process or worker made the change. A reader that falls behind what the log keeps, or
holds a version the store no longer has (a Redis restart that lost its last writes), gets the session
as it is now instead: never a gap presented as continuity.

A session awaiting its token reads as expired at `expires_at` (MfaSession.reads_expired): a reader that
gets there first records it (SessionStore.expire_due), exactly as a GET does, and the change log and
feed carry it to every other reader.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from redis.exceptions import RedisError

from mfa.clock import now_ms
from mfa.errors import SessionNotFound
from mfa.feed import ChangeFeed, Watch
from mfa.session import MfaSession, SessionStatus
from mfa.store import SessionStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """The session as one version left it, to be shown as of `at_ms` (when that version was made)."""

    session: MfaSession
    at_ms: int


@dataclass(frozen=True)
class Heartbeat:
    """Nothing changed for a while: proves to the client (and any proxy) that the stream is alive."""


@dataclass(frozen=True)
class Reconnect:
    """The stream ends before the session does (its time is up, or the process is stopping)."""


Update = Change | Heartbeat | Reconnect


def changes_since(store: SessionStore, session_id: str, version: int) -> list[Change]:
    """Every change after `version`, oldest first; or the session as it is now when the log cannot
    continue from `version`. SessionNotFound once the session is gone."""
    entries = store.events_after(session_id, version)
    if entries and entries[0].version == version + 1:
        return [Change(entry, entry.updated_at_ms) for entry in entries]
    current = store.get(session_id)
    return [Change(current, now_ms())] if current.version != version else []


def _seconds_to_expiry(session: MfaSession, now: int) -> float:
    """How long until the session reads as expired (infinite when it cannot, or already does)."""
    if session.status is not SessionStatus.AWAITING_TOKEN or session.expires_at_ms is None:
        return float("inf")
    left = (session.expires_at_ms - now) / 1000
    return left if left > 0 else float("inf")


def _record_expiry(store: SessionStore, session: MfaSession) -> bool:
    """Make a session that reads as expired durably so; False if the store could not be reached."""
    try:
        store.expire_due(session.id, now_ms())
    except RedisError:
        return False
    return True


def follow(
    store: SessionStore,
    feed: ChangeFeed,
    session: MfaSession,
    seen: int | None,
    *,
    heartbeat_seconds: float,
    max_seconds: float,
) -> Iterator[Update]:
    """The updates of a stream on `session` (as just read) for a client holding version `seen` (None:
    none yet). Ends after the change that makes the session final, when the session is gone, or with
    Reconnect when `max_seconds` have passed or the feed closes. A store outage does not end it: the
    heartbeats go on, and once the feed is back the stream reads what it missed."""
    started = time.monotonic()
    with feed.watch(session.id) as watch:
        latest = session
        if seen is None:
            seen = session.version
            if not session.reads_expired(now_ms()):
                yield Change(session, now_ms())
            if session.status.is_final:
                return
        stale = True  # the log may hold what the client has not seen (always so at first: the
        # session was read before the watch began)
        beat_at = time.monotonic() + heartbeat_seconds
        while True:
            if stale:
                stale = False
                try:
                    changes = changes_since(store, session.id, seen)
                except SessionNotFound:
                    return
                except RedisError as exc:
                    log.info("stream %s: store unavailable (%s); waiting", session.id, type(exc).__name__)
                    stale, changes = True, []
                for change in changes:
                    yield change
                    seen, latest = change.session.version, change.session
                if latest.status.is_final:
                    return
                if latest.reads_expired(now_ms()) and not stale and _record_expiry(store, latest):
                    stale = True  # the log now holds the expiry: read it and end
                    continue
            if watch.closing or time.monotonic() - started >= max_seconds:
                yield Reconnect()
                return
            timeout = min(
                beat_at - time.monotonic(),
                started + max_seconds - time.monotonic(),
                _seconds_to_expiry(latest, now_ms()),
            )
            if watch.wait(timeout):
                stale = True
                continue
            if latest.reads_expired(now_ms()):
                stale = True
            if time.monotonic() >= beat_at:
                yield Heartbeat()
                beat_at = time.monotonic() + heartbeat_seconds


def wait_for_change(
    store: SessionStore, feed: ChangeFeed, session: MfaSession, after: int, seconds: float
) -> MfaSession:
    """The session once its version is no longer `after`, or as it is after `seconds` (a long-poll).

    Answers at once when the session is already at another version, is final, or reads as expired; at
    `expires_at` when it expires while waiting; early, with the session as it is, when the feed closes.
    """
    if session.version != after or session.status.is_final or session.reads_expired(now_ms()):
        return session
    deadline = time.monotonic() + seconds
    with feed.watch(session.id) as watch:
        current = store.get(session.id)  # what changed before the watch began is not announced to it
        while _unchanged(current, after, watch):
            remaining = min(deadline - time.monotonic(), _seconds_to_expiry(current, now_ms()))
            if remaining <= 0:
                break
            if watch.wait(remaining) and not watch.closing:
                current = store.get(session.id)
        return current


def _unchanged(session: MfaSession, after: int, watch: Watch) -> bool:
    return (
        session.version == after
        and not session.status.is_final
        and not session.reads_expired(now_ms())
        and not watch.closing
    )
