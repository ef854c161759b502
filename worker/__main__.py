"""Worker entry point: an RQ worker on the resume queue with up to WORKER_CONCURRENCY calls in flight,
and the process's background threads: call leases, sweeper (expiry, recovery, retries) and the webhook
deliverer (threads of its own: worker/deliverer.py).

    python -m worker [--name NAME] [--burst]
    python -m worker --check [--max-age SECONDS]     (exit 0 when this worker heartbeated recently)

Jobs run in this process, each in a pooled thread (worker/resume_worker.py), not in a forked work
horse: a job is one HTTP call and two Redis scripts and spends nearly all its time waiting on Belvo, so
a fork and a fresh import per job would cost several times the job itself (bench/RESULTS.md), and a
process per call in flight would cost ~40 MiB each. A crash is covered without the fork's isolation:
a job that raises or times out is closed by its failure callback, and a process that dies mid-call
leaves lapsing leases that any worker's sweeper closes.

SIGTERM or SIGINT asks for a warm shutdown: no new job is taken and every call in flight finishes and
is recorded first. If RQ's loop gives up because Redis failed under it, the process waits for Redis and
starts a fresh RQ worker (the calls in flight carry on in their threads), so an outage never leaves the
service without workers.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and "--check" in sys.argv[1:]:  # a healthcheck: answer before importing RQ
    from worker.health import main as check

    sys.exit(check(sys.argv[1:]))

# gunicorn's metrics directory is the web's: a worker counts in its own memory and serves its own
# endpoint, even where one environment is shared by both (before prometheus_client is imported).
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import argparse
import contextlib
import importlib
import logging
import secrets
import socket
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from mfa import metrics, tracing
from mfa.connections import Role, connect
from mfa.dispatch import ALL_PATHS
from mfa.errors import ConfigError
from mfa.logs import configure_logging
from mfa.outbox import Outbox
from mfa.settings import Settings
from mfa.store import SessionStore
from worker import health, runtime
from worker import metrics as worker_metrics
from worker.deliverer import Deliverer, build_delivery
from worker.resume_worker import ResumeWorker
from worker.slots import CallSlots
from worker.sweeper import Sweeper

log = logging.getLogger("worker")


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


def run_rq(queue: Queue, slots: CallSlots, name: str | None, burst: bool, log_level: str) -> None:
    """RQ's work loop until a stop request (with `burst`: an empty queue); restarted after Redis fails."""
    restarts = 0
    while True:
        worker_name = name if restarts == 0 or not name else f"{name}-r{restarts}"
        worker = ResumeWorker(
            [queue], slots=slots, connection=queue.connection, name=worker_name, maintenance_interval=60
        )
        try:
            worker.work(burst=burst, logging_level=log_level)
        except RedisError as exc:
            log.error("RQ worker stopped on a Redis error (%s)", type(exc).__name__)
        if burst or worker.stop_requested:
            return
        log.warning("RQ worker loop ended without a stop request; restarting once Redis answers")
        with contextlib.suppress(Exception):  # its pubsub thread would otherwise retry forever
            worker.unsubscribe()  # type: ignore[no-untyped-call]
        _wait_for_redis(queue.connection, worker)
        if worker.stop_requested:
            return
        restarts += 1


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT (warm shutdown) or, with --burst, until the queue is empty."""
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--name", help="worker name (default: RQ's random name)")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if the worker using WORKER_HEARTBEAT_FILE heartbeated recently, else 1 (a healthcheck)",
    )
    parser.add_argument(
        "--max-age",
        type=float,
        default=health.DEFAULT_MAX_AGE_SECONDS,
        help="with --check: how old the last heartbeat may be, in seconds (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.check:
        return health.main(["--max-age", str(args.max_age)])
    try:
        settings = Settings.from_env().require_worker()
        check_job_paths()
    except ConfigError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    metrics.enable(settings.metrics_enabled)
    tracing.configure_tracing("belvo-mfa-worker", os.environ)
    if not settings.sealing_private_keys:
        log.warning(
            "no SEALING_PRIVATE_KEYS / RESULT_PUBLIC_KEY: results are stored unsealed, and tokens or bank"
            " credentials the web sealed cannot be opened (README, Sealing)"
        )
    redis = connect(settings, Role.WORKER)
    runner = runtime.build_runner(settings, redis)
    runtime.install(runner)
    slots = CallSlots(settings.worker_concurrency)
    # The sweeper gets a client of its own, so its calls never queue behind a job's; it leaves alone
    # the calls this process is still making (their leases may lapse in a Redis outage).
    sweeping = connect(settings, Role.SWEEPER)
    queue = Queue(settings.resume_queue, connection=redis)
    try:
        port = worker_metrics.serve(settings, sweeping, queue)
    except ConfigError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr)
        return 2
    if port is not None:
        log.info("metrics on http://%s:%d/metrics", settings.worker_metrics_host, port)
    heartbeat = health.Heartbeat(settings.worker_heartbeat_file, args.name or _default_name())
    heartbeat.acquire()
    sweeper = Sweeper(
        SessionStore.for_settings(settings, sweeping),
        settings.sweep_interval_seconds,
        Outbox(sweeping, settings.session_retention_seconds),
        held=runner.leases.live,
        on_pass=lambda now: heartbeat.beat(sweeping, now),
    )
    # Every background thread of the process starts here and stops here, newest first, once the RQ
    # loop has ended and the last call in flight with it.
    with contextlib.ExitStack() as background:
        background.callback(heartbeat.release, sweeping)  # after the sweeper's last beat
        runner.leases.start()
        background.callback(runner.leases.stop)
        sweeper.start()
        background.callback(_stop_and_join, sweeper)
        deliverer = _start_deliverer(settings, args.name)
        if deliverer is not None:
            background.callback(deliverer.stop, settings.webhooks.timeout_seconds + 2)
        try:
            run_rq(queue, slots, args.name, args.burst, settings.log_level)
        finally:
            slots.close()  # a stop between two RQ workers has not drained yet
    return 0


def _stop_and_join(sweeper: Sweeper) -> None:
    """Stop the sweeper and let its last pass (and heartbeat) land before the name leaves mfa:workers."""
    sweeper.stop()
    sweeper.join(5)


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


def _default_name() -> str:
    """The name this worker's heartbeat goes by in mfa:workers when --name is not given."""
    return f"{socket.gethostname()}.{os.getpid()}"


if __name__ == "__main__":
    sys.exit(main())
