"""Closes what time has ended, without scanning keys: expired sessions and calls whose worker died.

Reads two sorted sets (mfa:expiry, mfa:leases) by score up to now; each close is an atomic
transition, so several sweepers (one per worker process) can run at once without harm.
"""

from __future__ import annotations

import logging
import threading

from redis.exceptions import RedisError

from app.services import now_ms
from app.store import EXPIRY_ZSET, LEASES_ZSET, SessionStore

log = logging.getLogger(__name__)
BATCH = 500


def sweep_once(store: SessionStore, now: int) -> tuple[int, int]:
    """One pass: returns (sessions closed by expiry, calls recovered from dead workers)."""
    expired = recovered = 0
    while True:
        due = store.due(EXPIRY_ZSET, now, BATCH)
        for session_id in due:
            status = store.expire_due(session_id, now)
            expired += status in ("expired", "failed")
        # Sessions still open past their time (a call in flight) stay listed: don't spin on them.
        if len(due) < BATCH or not expired:
            break
    for session_id in store.due(LEASES_ZSET, now, BATCH):
        if store.recover_lapsed(session_id, now):
            recovered += 1
            log.warning("session %s: worker died mid-call; closed as upstream_outcome_unknown", session_id)
    return expired, recovered


class Sweeper(threading.Thread):
    """Runs sweep_once every `interval` seconds until stopped; rides out Redis outages."""

    def __init__(self, store: SessionStore, interval: float) -> None:
        super().__init__(name="mfa-sweeper", daemon=True)
        self.store, self.interval = store, interval
        self.stopping = threading.Event()

    def run(self) -> None:
        wait = self.interval
        while not self.stopping.wait(wait):
            try:
                expired, _ = sweep_once(self.store, now_ms())
                if expired:
                    log.info("sweeper: %d session(s) expired", expired)
                wait = self.interval
            except RedisError as exc:
                wait = min(max(wait * 2, 1.0), 10.0)
                log.warning("sweeper: Redis unavailable (%s); retrying in %.1fs", type(exc).__name__, wait)

    def stop(self) -> None:
        """Ask the loop to end after its current pass."""
        self.stopping.set()
