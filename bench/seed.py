"""Awaiting sessions made straight through mfa.store, as POST /v1/sessions stores them, only faster."""

from __future__ import annotations

import secrets
import time
import uuid
from pathlib import Path

from redis import Redis
from rq import Queue

from app.auth import hash_secret
from mfa.dispatch import Dispatcher
from mfa.pause import TokenGenerationData
from mfa.session import NewSession, SessionStatus
from mfa.store import SessionStore

# Every seeded session opens with this one client secret: the server hashes and compares it per
# request exactly as it would a per-session secret, and the wrk scripts need only the ids.
CLIENT_SECRET = "mcs_bench-known-client-secret-0123456789abcdefghij"
SECRET_HASH = hash_secret(CLIENT_SECRET)
# The sandbox's numeric challenge (sandbox/README.md), validated as the API validates it.
CHALLENGE = TokenGenerationData(
    instructions="Please enter the numeric code sent to your phone",
    type="numeric",
    value="",
    expects_user_input=True,
).model_dump(mode="json")
EXPIRY_SECONDS = 9600  # the sandbox's (and Belvo's example) session expiry
RETENTION_SECONDS = 86400  # the service's default SESSION_RETENTION_SECONDS
BATCH = 1000


def seed_sessions(
    redis: Redis, count: int, retention_seconds: int = RETENTION_SECONDS, webhooks: tuple[str, ...] = ()
) -> list[str]:
    """Store `count` awaiting sessions (hash, Belvo index key, expiry entry; with `webhooks`, their first
    event too); returns their ids."""
    ids: list[str] = []
    now = int(time.time() * 1000)
    for start in range(0, count, BATCH):
        # A store bound to a pipeline queues its scripts: one round trip per batch, same Lua.
        with redis.pipeline(transaction=False) as pipe:
            dispatcher = Dispatcher(Queue("belvo-resume", connection=redis), 60, retention_seconds)
            store = SessionStore(pipe, retention_seconds, dispatcher)  # type: ignore[arg-type]
            for _ in range(min(BATCH, count - start)):
                new = NewSession(
                    status=SessionStatus.AWAITING_TOKEN,
                    resource="links",
                    secret_hash=SECRET_HASH,
                    expiry_seconds=EXPIRY_SECONDS,
                    link=str(uuid.uuid4()),
                    belvo_session=secrets.token_hex(16),
                    challenge=CHALLENGE,
                    webhooks=webhooks,
                )
                ids.append(store.create(new, now).id)
            created = pipe.execute()
        if not all(created):
            raise RuntimeError("a seeded session collided with an existing Belvo session")
    return ids


def write_ids(ids: list[str], path: Path) -> Path:
    """One id a line, for the wrk scripts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(ids) + "\n")
    return path
