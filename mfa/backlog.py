"""The work waiting in Redis, read at scrape time: the queue, the retry and lease lists, live workers.

These are facts about the shared store, not about one process, so any process may serve them: the web
does (its /metrics is up even when every worker is down, which is when they matter most) and so does
each worker's endpoint. Across instances, take the max. One scrape costs two round trips of O(1) and
O(log n) commands; nothing is scanned.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from mfa.clock import now_ms
from mfa.keys import EXPIRY_ZSET, LEASES_ZSET, RETRIES_ZSET, WORKERS_ZSET

OLDEST_LOOKED_AT = 5  # queued ids whose job hash is checked for the oldest one (an expired job has none)


def live_window_ms(sweep_interval_seconds: float) -> int:
    """How recent a worker's heartbeat must be for it to count as live: a few missed sweeps, at least 10 s."""
    return int(max(10.0, 5 * sweep_interval_seconds) * 1000)


def _enqueued_at_ms(raw: bytes | None) -> int | None:
    if not raw:
        return None
    stamp = datetime.strptime(raw.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(stamp.timestamp() * 1000)


class BacklogCollector(Collector):
    """Gauges of the queue and the sweeper's lists, read from Redis each time Prometheus scrapes."""

    def __init__(self, redis: Redis, queue: Queue, live_window_ms: int) -> None:
        self.redis, self.queue, self.live_window_ms = redis, queue, live_window_ms

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges; none at all when Redis does not answer (the scrape still succeeds)."""
        try:
            yield from self._read(now_ms())
        except RedisError:
            return

    def _read(self, now: int) -> Iterator[GaugeMetricFamily]:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.llen(self.queue.key)
            pipe.lrange(self.queue.key, 0, OLDEST_LOOKED_AT - 1)
            pipe.zcard(RETRIES_ZSET)
            pipe.zrange(RETRIES_ZSET, 0, 0, withscores=True)
            pipe.zrange(LEASES_ZSET, 0, 0, withscores=True)
            pipe.zcard(LEASES_ZSET)
            pipe.zcard(EXPIRY_ZSET)
            pipe.zcount(WORKERS_ZSET, now - self.live_window_ms, "+inf")
            depth, head, retries, first_retry, first_lease, leases, open_sessions, live = pipe.execute()
        oldest_ms = None
        if head:
            prefix = self.queue.job_class.redis_job_namespace_prefix
            with self.redis.pipeline(transaction=False) as pipe:
                for job_id in head:
                    pipe.hget(prefix + job_id.decode(), "enqueued_at")
                stamps = [_enqueued_at_ms(raw) for raw in pipe.execute()]
            oldest_ms = next((s for s in stamps if s is not None), None)
        queue = self.queue.name
        yield _gauge("mfa_queue_jobs", "Jobs waiting in the RQ queue", depth, queue=queue)
        yield _gauge(
            "mfa_queue_oldest_job_age_seconds",
            "How long the oldest job waiting in the RQ queue has waited (0 when none waits)",
            max(0, now - oldest_ms) / 1000 if oldest_ms is not None else 0.0,
            queue=queue,
        )
        yield _gauge("mfa_retries_pending", "Attempts listed to be retried once due", retries)
        yield _gauge("mfa_calls_leased", "Calls to Belvo in flight under a lease, across all workers", leases)
        overdue = GaugeMetricFamily(
            "mfa_overdue_seconds",
            "How far past its time the most overdue entry of a list is (0 when none): a lease past its "
            "deadline is a dead worker's call not yet recovered, a retry past due one not yet enqueued",
            labels=["list"],
        )
        for name, first in (("leases", first_lease), ("retries", first_retry)):
            late = (now - first[0][1]) / 1000 if first and first[0][1] < now else 0.0
            overdue.add_metric([name], late)
        yield overdue
        yield _gauge(
            "mfa_sessions_open", "Sessions waiting for a token or for their call (mfa:expiry)", open_sessions
        )
        yield _gauge("mfa_workers_live", "Workers whose sweeper reached Redis in the last few seconds", live)


def _gauge(name: str, documentation: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family
