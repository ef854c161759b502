"""The leases of one process's calls in flight, kept alive by one thread for all of them.

begin_call gives each call a lease in mfa:leases. While the call is held here, one thread pushes
every held lease forward with a single ZADD XX per beat (every third of a lease), however many calls
are in flight. A process that dies stops beating: its leases lapse and any sweeper closes those steps
as upstream_outcome_unknown. Two bounds keep a lease honest:

- a hold ends at its deadline (the job's timeout and one lease more), so a call stuck past it (in a
  DNS lookup, which has no timeout) is left to lapse and is closed as a dead worker's would be;
- during a Redis outage every beat fails and the leases lapse in Redis. The first beat that lands
  afterwards renews them (XX never revives a closed one), and this process's own sweeper never closes
  a call the process still holds (`live`), so a call that got Belvo's answer records that answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError

from mfa.clock import now_ms
from mfa.store import SessionStore

log = logging.getLogger(__name__)
RETRY_SECONDS = 0.25  # after a failed beat: renew promptly once Redis is back, before sweepers act


class CallLeases:
    """Holds this process's calls in flight and keeps their leases alive, one beat for all."""

    def __init__(self, store: SessionStore, lease_ms: int, hold_ms: int) -> None:
        self.store, self.lease_ms, self.hold_ms = store, lease_ms, hold_ms
        self._held: dict[str, int] = {}  # session id -> when its hold ends (ms); one call per session
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def hold(self, session_id: str) -> Iterator[int]:
        """Keep the call's lease alive while the block runs (up to its deadline, which it yields)."""
        deadline = now_ms() + self.hold_ms
        with self._lock:
            self._held[session_id] = deadline
        try:
            yield deadline
        finally:
            with self._lock:
                self._held.pop(session_id, None)

    def live(self, now: int) -> frozenset[str]:
        """The sessions whose call is held here and within its deadline."""
        with self._lock:
            return frozenset(sid for sid, deadline in self._held.items() if deadline > now)

    def beat(self, now: int) -> int:
        """Push every live lease forward once, in one command; returns how many calls it covered."""
        held = self.live(now)
        if held:
            self.store.extend_leases(held, now, self.lease_ms)
        return len(held)

    def start(self) -> None:
        """Start the beating thread."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="mfa-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating (calls still held then lapse); waits a little for a beat in progress."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)  # a beat stuck on a hung Redis must not hold up the exit
            self._thread = None

    def _run(self) -> None:
        interval = self.lease_ms / 3000
        wait = interval
        while not self._stopping.wait(wait):
            try:
                self.beat(now_ms())
                wait = interval
            except RedisError as exc:
                wait = min(interval, RETRY_SECONDS)
                log.warning(
                    "could not renew the call leases (%s); retrying in %.2fs", type(exc).__name__, wait
                )
            except Exception:
                wait = interval
                log.exception("renewing the call leases failed")
