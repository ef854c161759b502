"""What the factory wires once per process and every view shares: settings, Redis, the store, the outbox."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from redis import Redis

from mfa.connections import Role, connect
from mfa.outbox import Outbox
from mfa.sealing import AtRest, Opener, Sealer
from mfa.settings import Settings
from mfa.store import SessionStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """The process-wide collaborators of the views."""

    settings: Settings
    redis: Redis
    store: SessionStore
    # Seals what only the worker may open (MFA tokens, bank credentials): SEALING_PUBLIC_KEY.
    secrets: AtRest
    # Opens the results the worker sealed for API-key reads: RESULT_PRIVATE_KEYS.
    results: AtRest
    outbox: Outbox

    @classmethod
    def build(cls, settings: Settings) -> Services:
        """Create clients; nothing connects until the first command."""
        redis = connect(settings, Role.WEB)
        if not settings.sealing_public_key:
            log.warning(
                "no SEALING_PUBLIC_KEY / RESULT_PRIVATE_KEYS: MFA tokens are stored unsealed and /v1/links"
                " is disabled (README, Sealing)"
            )
        public, private = settings.sealing_public_key, ",".join(settings.result_private_keys)
        return cls(
            settings,
            redis,
            SessionStore.for_settings(settings, redis),
            secrets=AtRest(sealer=Sealer.from_text(public) if public else None),
            results=AtRest(opener=Opener.from_text(private) if private else None),
            outbox=Outbox(redis, settings.session_retention_seconds),
        )


def services() -> Services:
    """The current app's services."""
    found: Services = current_app.extensions["mfa"]
    return found
