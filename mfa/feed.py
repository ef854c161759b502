"""The change feed of one process: one subscription to mfa:changed, fanned out to whoever waits on a session.

Every transition a reader can see announces "{id} {version}" on the channel mfa:changed (mfa/keys.py), so a
change made by any worker reaches every web process. Each process holds one subscription, on a connection
of its own, and wakes the watches of the announced session; a watch then reads the session's change log
(SessionStore.events_after) for what it has not seen, so an announcement carries no state and a lost one
costs nothing but latency.

Announcements are not durable: whatever is published while the subscription is down is gone. So after
every (re)subscription every watch is woken as if its session had changed, and re-reads the log from
where it was. A connection that has gone quiet is found by a PING every few seconds: one that is not
answered in time is dropped and made again.

Blocking parts (the thread, its lock, each watch's event) are made on first use in the process that uses
them, never before a fork: gunicorn imports the app in its master (preload_app) and forks the web
workers, which under gevent turn threads and events into greenlets only after the fork.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator

from redis import Redis
from redis.client import PubSub
from redis.exceptions import RedisError

from mfa.keys import CHANGES_CHANNEL

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # how long one read for announcements blocks: how soon close() is noticed
PING_SECONDS = 5.0  # a quiet subscription is PINGed this often...
SILENT_SECONDS = 15.0  # ...and dropped when nothing at all came back for this long
MAX_BACKOFF_SECONDS = 1.0  # between attempts to subscribe again: Redis back means streams back within ~1 s


class Watch:
    """One reader's interest in one session: woken when it changes, when the feed subscribes again
    (something may have been missed), or when the feed closes."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.closing = False
        self._woken = threading.Event()

    def wake(self) -> None:
        """The session may have changed: its reader should look at the log."""
        self._woken.set()

    def wait(self, timeout: float) -> bool:
        """Block until woken or `timeout` seconds; True if woken. Each wake is consumed once."""
        woken = self._woken.wait(max(0.0, timeout))
        self._woken.clear()
        return woken


class ChangeFeed:
    """One subscription to mfa:changed per process, and the watches it wakes."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis  # a client of its own: the subscription holds its connection for good
        self._pid = 0
        self._lock: threading.Lock | None = None
        self._watches: dict[str, set[Watch]] = {}
        self._thread: threading.Thread | None = None
        self._pubsub: PubSub | None = None
        self._closed = False
        self.subscriptions = 0  # how many times the feed has (re)subscribed in this process

    @contextlib.contextmanager
    def watch(self, session_id: str) -> Iterator[Watch]:
        """A watch on `session_id` for the length of the block (after close(), one that is closing)."""
        watch = Watch(session_id)
        lock = self._start()
        with lock:
            if self._closed:
                watch.closing = True
            self._watches.setdefault(session_id, set()).add(watch)
        try:
            yield watch
        finally:
            with lock:
                watchers = self._watches.get(session_id)
                if watchers is not None:
                    watchers.discard(watch)
                    if not watchers:
                        del self._watches[session_id]

    def watching(self) -> int:
        """How many watches are open in this process."""
        if self._lock is None:
            return 0
        with self._lock:
            return sum(len(w) for w in self._watches.values())

    def close(self) -> None:
        """Wake every watch with `closing` set (their readers end), and end the subscription."""
        self._closed = True
        self._wake_all(closing=True)
        pubsub = self._pubsub
        if pubsub is not None and pubsub.connection is not None:
            with contextlib.suppress(RedisError, OSError):
                pubsub.connection.disconnect()  # the subscription's read fails now, not at its timeout

    def _start(self) -> threading.Lock:
        """The lock, made (and the subscription thread started) on first use in this process."""
        if self._pid != os.getpid():
            # First use, or first use after a fork: what the parent held is not ours.
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._watches = {}
            self._thread = None
        assert self._lock is not None
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="mfa-change-feed", daemon=True)
                self._thread.start()
        return self._lock

    def _wake_all(self, closing: bool = False) -> None:
        if self._lock is None:
            return
        with self._lock:
            everyone = [w for watchers in self._watches.values() for w in watchers]
        for watch in everyone:
            watch.closing = watch.closing or closing
            watch.wake()

    def _wake(self, session_id: str) -> None:
        assert self._lock is not None
        with self._lock:
            watchers = list(self._watches.get(session_id, ()))
        for watch in watchers:
            watch.wake()

    def _run(self) -> None:
        backoff = 0.0
        while not self._closed:
            pubsub = self._pubsub = self._redis.pubsub()  # type: ignore[no-untyped-call]
            try:
                self._follow(pubsub)
                backoff = 0.0
            except (RedisError, OSError) as exc:
                if self._closed:
                    break
                log.warning("change feed: subscription lost (%s); subscribing again", type(exc).__name__)
                backoff = min(max(backoff * 2, 0.1), MAX_BACKOFF_SECONDS)
                time.sleep(backoff)
            except Exception:  # the feed must outlive any surprise, or its streams go deaf
                if self._closed:
                    break  # close() disconnected the connection under a read: redis-py may raise anything
                log.exception("change feed: unexpected error; subscribing again")
                backoff = MAX_BACKOFF_SECONDS
                time.sleep(backoff)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    pubsub.reset()

    def _follow(self, pubsub: PubSub) -> None:
        """Subscribe, wake everyone (the gap before is unknown), then wake each announced session."""
        pubsub.subscribe(CHANGES_CHANNEL)
        heard = time.monotonic()
        pinged = heard
        while not self._closed:
            message = pubsub.get_message(timeout=POLL_SECONDS)
            now = time.monotonic()
            if message is not None:
                heard = now
                kind = message["type"]
                if kind == "subscribe":
                    self._wake_all()
                    self.subscriptions += 1
                elif kind == "message":
                    session_id, _, _ = message["data"].decode().partition(" ")
                    self._wake(session_id)
            if now - heard > SILENT_SECONDS:
                raise TimeoutError("no answer on the change feed's connection")
            if now - max(heard, pinged) > PING_SECONDS:
                pubsub.ping()
                pinged = now
