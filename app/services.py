"""What the factory wires once per process and every view shares: settings, Redis, the store, the outbox."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from redis import Redis

from mfa.connections import Role, connect
from mfa.outbox import Outbox
from mfa.settings import Settings
from mfa.store import SessionStore


@dataclass(frozen=True)
class Services:
    """The process-wide collaborators of the views."""

    settings: Settings
    redis: Redis
    store: SessionStore
    outbox: Outbox

    @classmethod
    def build(cls, settings: Settings) -> Services:
        """Create clients; nothing connects until the first command."""
        redis = connect(settings, Role.WEB)
        return cls(
            settings,
            redis,
            SessionStore.for_settings(settings, redis),
            Outbox(redis, settings.session_retention_seconds),
        )


def services() -> Services:
    """The current app's services."""
    found: Services = current_app.extensions["mfa"]
    return found
