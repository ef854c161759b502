"""What the web counts (HTTP requests, token submissions by answer) and GET /metrics, which serves those
with the core's families (mfa/metrics.py) and the backlog in Redis (mfa/backlog.py).

Under gunicorn every process writes its values to PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets it up)
and a scrape of any process sums them all, so one scrape sees the whole web. Keep the route off the
public internet: README, Operating it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, abort, g, request
from prometheus_client import REGISTRY, Counter, Histogram, Metric, multiprocess
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from app.services import services
from mfa import metrics as core
from mfa.backlog import BacklogCollector, live_window_ms

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

HTTP_REQUESTS = Counter(
    "mfa_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "mfa_http_request_duration_seconds",
    "Time from a request's arrival in the app to its answer",
    ["route", "method"],
    buckets=HTTP_BUCKETS,
)
TOKEN_SUBMISSIONS = Counter(
    "mfa_token_submissions",
    "Token submissions, by answer: accepted, replayed (Idempotency-Key), or the problem's code",
    ["answer"],
)
TOKEN_ENDPOINT = "sessions.submit_token"  # noqa: S105 - an endpoint's name
UNMATCHED = "unmatched"  # no route: a 404 or 405 from routing, whatever path was asked for

bp = Blueprint("metrics", __name__)


def register_metrics(app: Flask, enabled: bool) -> None:
    """Count every request (when `enabled`), and serve GET /metrics (404 when not)."""
    core.enable(enabled)
    app.register_blueprint(bp)
    if not enabled:
        return

    @app.after_request
    def _count(resp: Response) -> Response:
        rule = request.url_rule
        route, method = (rule.rule if rule is not None else UNMATCHED), request.method
        started = g.get("started")  # set by the request-id hook (app/logs.py), which runs first
        if started is not None:
            core.child(HTTP_SECONDS, route, method).observe(time.perf_counter() - started)
        core.child(HTTP_REQUESTS, route, method, str(resp.status_code)).inc()
        if request.endpoint == TOKEN_ENDPOINT:
            core.child(TOKEN_SUBMISSIONS, _answer(resp)).inc()
        return resp


def _answer(resp: Response) -> str:
    """How a token submission was answered, as a bounded label."""
    if resp.headers.get("Idempotent-Replayed") == "true":
        return "replayed"
    if resp.status_code == 202:
        return "accepted"
    return str(g.get("problem_code") or resp.status_code)


class _Scrape(Collector):
    """What one scrape serves: the counted families, then the backlog read from Redis now."""

    def __init__(self, *sources: Collector) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def _counted() -> Collector:
    """Under gunicorn, every process's values summed; else this process's own."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    return multiprocess.MultiProcessCollector(None)  # type: ignore[no-untyped-call]


@bp.get("/metrics")
def serve_metrics() -> Response:
    """Prometheus' text format (or OpenMetrics, if the scraper asks for it)."""
    svc = services()
    if not svc.settings.metrics_enabled:
        abort(404)
    backlog = BacklogCollector(
        svc.redis, svc.store.dispatcher.queue, live_window_ms(svc.settings.sweep_interval_seconds)
    )
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(_Scrape(_counted(), backlog)), content_type=content_type)
