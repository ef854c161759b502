"""Worker entry point: an RQ worker on the resume queue, with our sweeper (expiry, recovery, retries).

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
import logging
import sys
import time
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker

from app.config import ConfigError, Settings
from app.dispatch import enqueue_step
from app.logs import configure_logging
from app.services import now_ms
from app.store import SessionStore
from worker import jobs
from worker.sweeper import Sweeper

log = logging.getLogger("worker")


class ResumeWorker(SimpleWorker):
    """RQ's in-process worker, reconnecting to Redis at least every 2 s (RQ backs off to 60 s).

    Sessions wait on the far side of an outage with their Belvo clock running: a minute of extra
    backoff could let them expire. A PING every 2 s costs Redis nothing.
    """

    max_connection_wait_time = 2.0


def _wait_for_redis(redis: Redis, stop_requested: Callable[[], bool]) -> None:
    wait = 0.5
    while not stop_requested():
        try:
            redis.ping()
            return
        except RedisError:
            log.warning("Redis unavailable; the worker retries in %.1fs", wait)
            time.sleep(wait)
            wait = min(wait * 2, 2.0)  # a PING every 2 s is cheap; recovery should be quick


def _stop_requested(worker: ResumeWorker) -> bool:
    # RQ notes a SIGTERM/SIGINT (warm shutdown) in these private fields; an idle worker only in the date.
    return bool(worker._stop_requested or worker._shutdown_requested_date)


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT (warm shutdown) or, with --burst, until the queue is empty."""
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--name", help="worker name (default: RQ's random name)")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env().require_worker()
    except ConfigError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    redis = Redis.from_url(settings.redis_url, health_check_interval=30, socket_connect_timeout=2)
    queue = Queue(settings.resume_queue, connection=redis)
    jobs.context(redis)  # the jobs' settings, store and Belvo client, built once for every job
    # The sweeper thread gets a client of its own, so its blocking calls never queue behind a job's.
    sweeper_redis = Redis.from_url(
        settings.redis_url, health_check_interval=30, socket_connect_timeout=2, socket_timeout=5
    )
    sweeper_queue = Queue(settings.resume_queue, connection=sweeper_redis)
    sweeper = Sweeper(
        SessionStore(sweeper_redis, settings.session_retention_seconds),
        lambda pipe, s, attempt: enqueue_step(
            sweeper_queue, settings, pipe, s, now_ms=now_ms(), attempt=attempt
        ),
        settings.sweep_interval_seconds,
    )
    sweeper.start()
    restarts = 0
    try:
        while True:
            name = args.name if restarts == 0 or not args.name else f"{args.name}-r{restarts}"
            worker = ResumeWorker([queue], connection=redis, name=name, maintenance_interval=60)
            try:
                worker.work(burst=args.burst, logging_level=settings.log_level)
            except RedisError as exc:
                log.error("RQ worker stopped on a Redis error (%s)", type(exc).__name__)
            if args.burst or _stop_requested(worker):
                break
            log.warning("RQ worker loop ended without a stop request; restarting once Redis answers")
            with contextlib.suppress(Exception):  # its pubsub thread would otherwise retry forever
                worker.unsubscribe()
            _wait_for_redis(redis, lambda w=worker: _stop_requested(w))
            if _stop_requested(worker):
                break
            restarts += 1
    finally:
        sweeper.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
