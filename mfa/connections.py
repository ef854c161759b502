"""Redis clients for each kind of process, configured in one place."""

from __future__ import annotations

from enum import Enum

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from mfa.settings import Settings


class Role(str, Enum):
    """Who holds the connection; each fails and waits differently."""

    WEB = "web"  # inside a request: fail fast to a 503 rather than stack retries
    FEED = "feed"  # the web process's one subscription to the change feed (mfa/feed.py)
    WORKER = "worker"  # RQ's dequeue blocks on the socket: no read timeout
    SWEEPER = "sweeper"  # background loops: a read timeout, so an outage never hangs them


def connect(settings: Settings, role: Role) -> Redis:
    """A client for `role`; nothing connects until the first command."""
    if role is Role.WEB:
        # One connection per command in flight: at most one per open request (WEB_CONNECTIONS).
        return Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=1,
            socket_timeout=5,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 1),
        )
    if role is Role.FEED:
        # No retries of its own: mfa/feed.py sees every failure, subscribes again and tells its readers.
        return Redis.from_url(
            settings.redis_url, socket_connect_timeout=1, socket_timeout=5, retry=Retry(NoBackoff(), 0)
        )
    if role is Role.WORKER:
        return Redis.from_url(settings.redis_url, health_check_interval=30, socket_connect_timeout=2)
    return Redis.from_url(
        settings.redis_url, health_check_interval=30, socket_connect_timeout=2, socket_timeout=5
    )
