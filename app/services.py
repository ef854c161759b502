"""What the factory wires once per process and every view shares: settings, Redis, store, queue."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue

from app.config import Settings
from app.store import SessionStore


@dataclass(frozen=True)
class Services:
    """The process-wide collaborators of the views."""

    settings: Settings
    redis: Redis
    store: SessionStore
    queue: Queue

    @classmethod
    def build(cls, settings: Settings) -> Services:
        """Create clients; nothing connects until the first command."""
        redis = Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=1,
            socket_timeout=5,
            health_check_interval=30,
            # Fail fast to a 503 when Redis is down instead of stacking retries inside a request.
            retry=Retry(NoBackoff(), 1),
        )
        store = SessionStore(redis, settings.session_retention_seconds)
        return cls(settings, redis, store, Queue(settings.resume_queue, connection=redis))


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["mfa"]


def now_ms() -> int:
    """Wall-clock milliseconds: expiry deadlines are shared across hosts, so no monotonic clock."""
    return int(time.time() * 1000)
