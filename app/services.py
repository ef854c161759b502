"""What the factory wires once per process and every view shares: settings, Redis, the store, the feed."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from redis import Redis

from mfa.connections import Role, connect
from mfa.feed import ChangeFeed
from mfa.settings import Settings
from mfa.store import SessionStore


@dataclass(frozen=True)
class Services:
    """The process-wide collaborators of the views."""

    settings: Settings
    redis: Redis
    store: SessionStore
    feed: ChangeFeed  # the process's one subscription to session changes (live status)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        """Create clients; nothing connects until the first command."""
        redis = connect(settings, Role.WEB)
        feed = ChangeFeed(connect(settings, Role.FEED))
        return cls(settings, redis, SessionStore.for_settings(settings, redis), feed)


def services() -> Services:
    """The current app's services."""
    found: Services = current_app.extensions["mfa"]
    return found
