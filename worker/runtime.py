"""The worker process's wiring, built once at start-up and read by every job.

RQ imports job functions by dotted path and calls them with plain ids, so a job finds what it needs
here: the step runner (store, Belvo client, retry policy, lease, credentials). `python -m worker`
installs it before the first job; a job that runs without it is a bug, and says so.
"""

from __future__ import annotations

from redis import Redis

from mfa.belvo import BelvoClient
from mfa.outcomes import RetryPolicy
from mfa.sealing import CredentialVault
from mfa.settings import Settings
from mfa.steps import StepRunner
from mfa.store import SessionStore

_runner: StepRunner | None = None


def build_runner(settings: Settings, redis: Redis) -> StepRunner:
    """The step runner for `settings`, on `redis`."""
    return StepRunner(
        store=SessionStore.for_settings(settings, redis),
        client=BelvoClient(
            settings.belvo_base_url,
            settings.belvo_secret_id,
            settings.belvo_secret_password,
            settings.upstream_timeout_seconds,
        ),
        policy=RetryPolicy(settings.resume_max_attempts, settings.resume_backoff_seconds),
        lease_ms=int(settings.lease_seconds * 1000),
        vault=CredentialVault(settings.credentials_key) if settings.credentials_key else None,
    )


def install(runner: StepRunner) -> None:
    """Make `runner` the one every job of this process uses."""
    global _runner
    _runner = runner


def runner() -> StepRunner:
    """The installed step runner."""
    if _runner is None:
        raise RuntimeError("no step runner installed: jobs run inside `python -m worker`")
    return _runner
