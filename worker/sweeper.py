"""Acts on what time has made due, without scanning keys: expiries, dead workers' calls, and retries.

Reads four sorted sets by score up to now (mfa:expiry, mfa:leases, mfa:retries, mfa:webhook-retries);
each action is an atomic script, so the sweepers of several worker processes can run at once without
harm. Retries live here rather than in RQ's scheduler: that scheduler runs as one lock-holding process
per queue, and a SIGKILLed holder or a Redis outage stalls every delayed job until RQ's maintenance
notices. A due webhook retry goes back into the outbox stream, where any worker's deliverer takes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Set

from redis.exceptions import RedisError

from mfa.clock import now_ms
from mfa.keys import EXPIRY_ZSET, LEASES_ZSET, RETRIES_ZSET, WEBHOOK_RETRIES_ZSET
from mfa.outbox import Outbox
from mfa.store import SessionStore

log = logging.getLogger(__name__)
BATCH = 500


def sweep_once(
    store: SessionStore, now: int, outbox: Outbox | None = None, held: Set[str] = frozenset()
) -> tuple[int, int, int]:
    """One pass: returns (sessions closed by expiry, calls recovered from dead workers, retries enqueued);
    with `outbox`, due webhook retries are put back into it too.

    `held`: the calls this very process is still making, alive whatever their leases say (a Redis
    outage lets every lease lapse); other processes' sweepers still close them if this one dies.
    """
    expired = recovered = retried = 0
    while True:
        due = store.due(EXPIRY_ZSET, now, BATCH)
        closed = sum(store.expire_due(session_id, now) in ("expired", "failed") for session_id in due)
        expired += closed
        # Sessions still open past their time (a call in flight) stay listed: don't spin on them.
        if len(due) < BATCH or not closed:
            break
    for session_id in store.due(LEASES_ZSET, now, BATCH):
        if session_id not in held and store.recover_lapsed(session_id, now):
            recovered += 1
            log.warning(
                "session %s: worker died mid-call; closed as upstream_outcome_unknown",
                session_id,
                extra={"session_id": session_id},
            )
    for session_id in store.due(RETRIES_ZSET, now, BATCH):
        retried += store.promote_retry(session_id, now)
    if outbox is not None:
        for member in store.due(WEBHOOK_RETRIES_ZSET, now, BATCH):
            outbox.promote(member, now)
    return expired, recovered, retried


class Sweeper(threading.Thread):
    """Runs sweep_once every `interval` seconds until stopped; rides out Redis outages.

    `on_pass(now_ms)` runs after every pass that reached Redis: the worker's heartbeat.
    """

    def __init__(
        self,
        store: SessionStore,
        interval: float,
        outbox: Outbox | None = None,
        held: Callable[[int], Set[str]] = lambda now: frozenset(),
        on_pass: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(name="mfa-sweeper", daemon=True)
        self.store, self.interval, self.outbox, self.held = store, interval, outbox, held
        self.on_pass = on_pass
        self.stopping = threading.Event()

    def run(self) -> None:
        wait = self.interval
        while not self.stopping.wait(wait):
            try:
                now = now_ms()
                expired, _, _ = sweep_once(self.store, now, self.outbox, self.held(now))
                if expired:
                    log.info("sweeper: %d session(s) expired", expired)
                if self.on_pass is not None:
                    self.on_pass(now)
                wait = self.interval
            except RedisError as exc:
                wait = min(max(wait * 2, 0.5), 2.0)
                log.warning("sweeper: Redis unavailable (%s); retrying in %.1fs", type(exc).__name__, wait)

    def stop(self) -> None:
        """Ask the loop to end after its current pass."""
        self.stopping.set()
