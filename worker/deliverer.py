"""Webhook delivery beside the RQ job loop: threads of their own, so no receiver ever delays a resume.

Each of WEBHOOK_CONCURRENCY threads is one consumer of the outbox's group: it blocks on the stream for
the next delivery, and now and then takes over deliveries a dead worker held (XAUTOCLAIM). A hanging
receiver holds one thread for at most the webhook timeout; the others go on. The threads share one
Redis client of their own and one HTTP pool, never the job loop's.
"""

from __future__ import annotations

import logging
import threading
import time

from redis import Redis
from redis.exceptions import RedisError

from mfa.clock import now_ms
from mfa.delivery import DeliveryRunner
from mfa.destinations import WebhookSender
from mfa.outbox import Outbox
from mfa.settings import Settings
from mfa.webhooks import Signer

log = logging.getLogger(__name__)
BLOCK_MS = 1000  # how long a read waits for an entry: also how quickly a stop is noticed
CONSUMERS_IDLE_MS = 3600 * 1000  # a consumer silent this long, holding nothing, is a worker gone for good


def build_delivery(settings: Settings, redis: Redis) -> DeliveryRunner | None:
    """The delivery runner for `settings` on `redis`; None without WEBHOOK_SECRETS (nothing can be signed)."""
    hooks = settings.webhooks
    if not hooks.secrets:
        return None
    return DeliveryRunner(
        outbox=Outbox(redis, settings.session_retention_seconds),
        sender=WebhookSender(settings.destination_policy, hooks.timeout_seconds, max_pools=64),
        signer=Signer(hooks.secrets),
        schedule=hooks.schedule,
    )


def deliver_pending(runner: DeliveryRunner, consumer: str, limit: int = 1000) -> int:
    """Deliver what the outbox holds now, in this thread (as the fast tests do); returns how many."""
    runner.outbox.ensure_group()
    done = 0
    while done < limit:
        entries = runner.outbox.read(consumer, count=50, block_ms=None)
        if not entries:
            return done
        for entry in entries:
            runner.deliver(entry)
            done += 1
    return done


class Deliverer:
    """WEBHOOK_CONCURRENCY threads, each a consumer named `{name}-{i}` of the outbox's group."""

    def __init__(self, runner: DeliveryRunner, name: str, concurrency: int, claim_idle_ms: int) -> None:
        self.runner, self.name, self.claim_idle_ms = runner, name, claim_idle_ms
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(f"{name}-{i}",), name=f"webhooks-{i}", daemon=True)
            for i in range(concurrency)
        ]

    def start(self) -> None:
        """Start every thread."""
        for thread in self.threads:
            thread.start()

    def stop(self, timeout: float) -> None:
        """Ask every thread to stop after its attempt in hand, and wait up to `timeout` for them."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, consumer: str) -> None:
        outbox, wait = self.runner.outbox, 0.5
        next_claim = 0.0
        while not self.stopping.is_set():
            try:
                outbox.ensure_group()
                break
            except RedisError:
                self.stopping.wait(wait)
        while not self.stopping.is_set():
            try:
                entries = []
                if time.monotonic() >= next_claim:
                    # Staggered by the thread's clock: a dead worker's deliveries resume within about
                    # claim_idle_ms, and the group's list of consumers stays short.
                    next_claim = time.monotonic() + self.claim_idle_ms / 2000
                    entries = outbox.claim(consumer, self.claim_idle_ms, 10)
                    if consumer.endswith("-0"):
                        outbox.forget_consumers(CONSUMERS_IDLE_MS, now_ms())
                entries = entries or outbox.read(consumer, count=1, block_ms=BLOCK_MS)
                for entry in entries:
                    self.runner.deliver(entry)
                wait = 0.5
            except RedisError as exc:
                log.warning("webhooks: Redis unavailable (%s); retrying in %.1fs", type(exc).__name__, wait)
                self.stopping.wait(wait)
                wait = min(wait * 2, 2.0)
            except Exception:
                log.exception("webhooks: delivery failed unexpectedly; the entry is retried by a takeover")
                self.stopping.wait(1.0)
