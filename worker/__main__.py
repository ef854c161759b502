"""Worker entry point: an RQ worker on the resume queue, with our sweeper (expiry, recovery, retries)
and the webhook deliverer (threads of its own: worker/deliverer.py).

    python -m worker [--name NAME] [--burst]

Jobs run in this process, one at a time (RQ's SimpleWorker), not in a forked work horse: a job is one
HTTP call and two Redis scripts, so a fork and a fresh import per job would cost several times the job
itself (bench/RESULTS.md), and the Belvo connection is kept alive between jobs. A crash is covered
without the fork's isolation: a job that raises or times out (SIGALRM) is closed by its failure
callback, and a process that dies mid-call leaves a lapsing lease that any worker's sweeper closes.

SIGTERM or SIGINT asks for a warm shutdown: the job in hand finishes first. If RQ's loop gives up
because Redis failed under it, the process waits for Redis and starts a fresh RQ worker instead of
exiting, so an outage never leaves the service without workers.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import secrets
import sys
import time
from types import FrameType

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.job import Job

from mfa.connections import Role, connect
from mfa.dispatch import ALL_PATHS
from mfa.errors import ConfigError
from mfa.logs import configure_logging
from mfa.outbox import Outbox
from mfa.settings import Settings
from mfa.store import SessionStore
from worker import runtime
from worker.deliverer import Deliverer, build_delivery
from worker.stranded import requeue_stranded
from worker.sweeper import Sweeper

log = logging.getLogger("worker")


class ResumeWorker(SimpleWorker):
    """RQ's in-process worker, reconnecting to Redis at least every 2 s (RQ backs off to 60 s).

    Sessions wait on the far side of an outage with their Belvo clock running: a minute of extra
    backoff could let them expire. A PING every 2 s costs Redis nothing.
    """

    max_connection_wait_time = 2.0

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stop_requested = False
        self.job_in_hand: str | None = None  # still set if Redis failed under the job (worker/stranded.py)

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job, remembering it until it has run its course."""
        self.job_in_hand = job.id
        super().execute_job(job, queue)
        self.job_in_hand = None

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: note the warm shutdown, then let RQ finish the job in hand."""
        self.stop_requested = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]


def check_job_paths() -> None:
    """Fail start-up unless every job path the web and the sweeper enqueue resolves to a function here."""
    for path in ALL_PATHS:
        module, _, name = path.rpartition(".")
        if not callable(getattr(importlib.import_module(module), name, None)):
            raise ConfigError(f"job {path} does not resolve to a function in this worker")


def _wait_for_redis(redis: Redis, worker: ResumeWorker) -> None:
    wait = 0.5
    while not worker.stop_requested:
        try:
            redis.ping()
            return
        except RedisError:
            log.warning("Redis unavailable; the worker retries in %.1fs", wait)
            time.sleep(wait)
            wait = min(wait * 2, 2.0)  # a PING every 2 s is cheap; recovery should be quick


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT (warm shutdown) or, with --burst, until the queue is empty."""
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--name", help="worker name (default: RQ's random name)")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env().require_worker()
        check_job_paths()
    except ConfigError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if not settings.sealing_private_keys:
        log.warning(
            "no SEALING_PRIVATE_KEYS / RESULT_PUBLIC_KEY: results are stored unsealed, and tokens or bank"
            " credentials the web sealed cannot be opened (README, Sealing)"
        )
    redis = connect(settings, Role.WORKER)
    queue = Queue(settings.resume_queue, connection=redis)
    runtime.install(runtime.build_runner(settings, redis))
    # The sweeper thread gets a client of its own, so its blocking calls never queue behind a job's.
    sweeping = connect(settings, Role.SWEEPER)
    sweeper = Sweeper(
        SessionStore.for_settings(settings, sweeping),
        settings.sweep_interval_seconds,
        Outbox(sweeping, settings.session_retention_seconds),
    )
    sweeper.start()
    deliverer = _start_deliverer(settings, args.name)
    restarts = 0
    cut_off: list[str] = []  # the job a Redis failure interrupted in this process
    try:
        while True:
            name = args.name if restarts == 0 or not args.name else f"{args.name}-r{restarts}"
            try:
                stranded = requeue_stranded(queue, cut_off)
            except RedisError:
                stranded = []  # Redis is not back yet: RQ's own loop waits for it
            if stranded:
                log.warning(
                    "put back on the queue %d job(s) whose run never finished: %s", len(stranded), stranded
                )
            worker = ResumeWorker([queue], connection=redis, name=name, maintenance_interval=60)
            try:
                worker.work(burst=args.burst, logging_level=settings.log_level)
            except RedisError as exc:
                log.error("RQ worker stopped on a Redis error (%s)", type(exc).__name__)
            if args.burst or worker.stop_requested:
                break
            cut_off = [worker.job_in_hand] if worker.job_in_hand else []
            log.warning("RQ worker loop ended without a stop request; restarting once Redis answers")
            with contextlib.suppress(Exception):  # its pubsub thread would otherwise retry forever
                worker.unsubscribe()  # type: ignore[no-untyped-call]
            _wait_for_redis(redis, worker)
            if worker.stop_requested:
                break
            restarts += 1
    finally:
        sweeper.stop()
        if deliverer is not None:
            deliverer.stop(settings.webhooks.timeout_seconds + 2)
    return 0


def _start_deliverer(settings: Settings, name: str | None) -> Deliverer | None:
    """The webhook deliverer's threads, on a Redis client of their own; None without WEBHOOK_SECRETS."""
    runner = build_delivery(settings, connect(settings, Role.SWEEPER))
    if runner is None:
        log.info("webhooks: WEBHOOK_SECRETS is not set; events wait in the outbox for a worker that has it")
        return None
    hooks = settings.webhooks
    consumer = name or f"worker-{os.getpid()}-{secrets.token_hex(3)}"
    deliverer = Deliverer(runner, consumer, hooks.concurrency, hooks.claim_idle_ms)
    deliverer.start()
    return deliverer


if __name__ == "__main__":
    sys.exit(main())
