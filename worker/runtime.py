"""The worker process's wiring, built once at start-up and read by every job.

RQ imports job functions by dotted path and calls them with plain ids, so a job finds what it needs
here: the step runner (store, Belvo client, retry policy, call leases, sealing keys). `python -m worker`
installs it before the first job; a job that runs without it is a bug, and says so. Many jobs use it at
once, one per call thread: everything in it is safe to share.
"""

from __future__ import annotations

from redis import Redis

from mfa.belvo import BelvoClient, pooled_http
from mfa.dispatch import job_timeout_seconds
from mfa.leases import CallLeases
from mfa.outcomes import RetryPolicy
from mfa.sealing import AtRest, Opener, Sealer
from mfa.settings import Settings
from mfa.steps import StepRunner
from mfa.store import SessionStore

_runner: StepRunner | None = None


def build_runner(settings: Settings, redis: Redis) -> StepRunner:
    """The step runner for `settings`, on `redis`; its CallLeases beat only once started."""
    store = SessionStore.for_settings(settings, redis)
    lease_ms = int(settings.lease_seconds * 1000)
    return StepRunner(
        store=store,
        client=BelvoClient(
            settings.belvo_base_url,
            settings.belvo_secret_id,
            settings.belvo_secret_password,
            settings.upstream_timeout_seconds,
            http=pooled_http(settings.worker_concurrency),
            max_body_bytes=settings.result_max_bytes,
        ),
        policy=RetryPolicy(settings.resume_max_attempts, settings.resume_backoff_seconds),
        # A hold outlives the job's own timeout by a lease, so a job that times out is closed by its
        # failure callback first; a thread stuck where no timeout reaches it is left to lapse.
        leases=CallLeases(
            store, lease_ms, hold_ms=job_timeout_seconds(settings.upstream_timeout_seconds) * 1000 + lease_ms
        ),
        secrets=AtRest(
            opener=Opener.from_text(keys) if (keys := ",".join(settings.sealing_private_keys)) else None
        ),
        results=AtRest(
            sealer=Sealer.from_text(settings.result_public_key) if settings.result_public_key else None
        ),
        result_max_bytes=settings.result_max_bytes,
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
