"""Worker entry point: an RQ worker on the resume queue, with RQ's scheduler and our expiry sweeper.

python -m worker [--name NAME] [--burst]
"""

from __future__ import annotations

import argparse
import logging
import sys

from redis import Redis
from rq import Queue, Worker

from app.config import ConfigError, Settings
from app.logs import configure_logging
from app.store import SessionStore
from worker.sweeper import Sweeper

log = logging.getLogger("worker")


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT (warm shutdown: the job in hand finishes first)."""
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--name", help="worker name (default: RQ's host.pid-based name)")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env().require_worker()
    except ConfigError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    redis = Redis.from_url(settings.redis_url, health_check_interval=30, socket_connect_timeout=2)
    # The sweeper gets its own client: the work horse is forked, and must never share a socket with it.
    sweeper_redis = Redis.from_url(
        settings.redis_url, health_check_interval=30, socket_connect_timeout=2, socket_timeout=5
    )
    sweeper = Sweeper(
        SessionStore(sweeper_redis, settings.session_retention_seconds), settings.sweep_interval_seconds
    )
    worker = Worker(
        [Queue(settings.resume_queue, connection=redis)],
        connection=redis,
        name=args.name,
        maintenance_interval=60,
    )
    sweeper.start()
    try:
        worker.work(burst=args.burst, with_scheduler=True, logging_level=settings.log_level)
    finally:
        sweeper.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
