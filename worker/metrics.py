"""The worker's own metrics endpoint (WORKER_METRICS_PORT): the core's families as this process counts
them (mfa/metrics.py), the process's own (CPU, memory, file descriptors), and the backlog read from
Redis at scrape time (mfa/backlog.py). Each worker process serves its own; there is no shared state."""

from __future__ import annotations

from prometheus_client import REGISTRY, start_http_server
from redis import Redis
from rq import Queue

from mfa.backlog import BacklogCollector, live_window_ms
from mfa.errors import ConfigError
from mfa.settings import Settings


def serve(settings: Settings, redis: Redis, queue: Queue) -> int | None:
    """Serve /metrics on WORKER_METRICS_HOST:WORKER_METRICS_PORT from a daemon thread; the port, or None
    when the endpoint is off. A port already taken stops start-up (ConfigError)."""
    if not settings.metrics_enabled or not settings.worker_metrics_port:
        return None
    REGISTRY.register(BacklogCollector(redis, queue, live_window_ms(settings.sweep_interval_seconds)))
    try:
        server, _ = start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    except OSError as exc:
        where = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
        raise ConfigError(
            f"WORKER_METRICS_PORT: cannot listen on {where} ({exc.strerror}); each worker needs its own port"
        ) from None
    return int(server.server_port)
