"""What the core counts, in Prometheus terms; the web and the worker each serve them (README, Operating it).

Every family is defined here once, with the small hook that records it, so callers never touch a label.
No label takes an unbounded value: resources and statuses are closed sets, HTTP statuses are reduced to
their class, and an error code Belvo sends is kept only if it is one we know (else `other`).

Under gunicorn the values live in PROMETHEUS_MULTIPROC_DIR (one file per process, summed at scrape
time); elsewhere in the process. `enable(False)` (METRICS_ENABLED=false) turns every hook into a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, get_args

from prometheus_client import Counter, Gauge, Histogram

from mfa.belvo import Resource

UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
WEBHOOK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# Codes an outcome may carry as a label: ours, and the ones Belvo documents (belvo.md). Any other code
# Belvo sends is counted as `other`; the session's outcome keeps the real one.
KNOWN_CODES = frozenset(
    {
        # ours (mfa/outcomes.py, mfa/session.py, mfa/steps.py)
        "upstream_unavailable",
        "upstream_auth_failed",
        "upstream_invalid_response",
        "upstream_rejected",
        "upstream_outcome_unknown",
        "internal_error",
        "session_expired",
        "cancelled",
        "token_missing",
        "token_unreadable",
        "credentials_missing",
        "credentials_unavailable",
        "result_too_large",
        # Belvo's
        "too_many_sessions",
        "institution_down",
        "institution_unavailable",
        "institution_inactive",
        "invalid_link",
        "unconfirmed_link",
        "unsupported_operation",
        "invalid_token",
        "invalid_credentials",
        "login_error",
        "authentication_failed",
        "access_to_resource_denied",
        "request_timeout",
        "unexpected_error",
        "required",
        "null",
        "blank",
        "does_not_exist",
        "invalid",
        "invalid_choice",
        "not_found",
        "parse_error",
    }
)
RESOURCES = frozenset({*get_args(Resource), "investments/portfolios"})
ORIGINS = {
    "awaiting_token": "handover",
    "registering": "registration",
    "retrieving": "retrieval",
    "updating": "update",
}
WEBHOOK_RESULTS = frozenset({"delivered", "retrying", "failed", "refused"})

SESSIONS_CREATED = Counter(
    "mfa_sessions_created",
    "Sessions created, by origin (a 428 handed over, a registration, a retrieval, a link update)",
    ["origin"],
)
OUTCOMES = Counter("mfa_outcomes", "Sessions ended, by final status and outcome code", ["status", "code"])
EXPIRIES = Counter(
    "mfa_sessions_expired",
    "Sessions whose Belvo session ran out: awaiting the user's token, or with our call still to make",
    ["phase"],
)
UPSTREAM_CALLS = Counter(
    "mfa_upstream_calls",
    "Calls to Belvo, by operation, resource and answer (status class, timeout or connection_error)",
    ["operation", "resource", "status_class"],
)
UPSTREAM_SECONDS = Histogram(
    "mfa_upstream_call_duration_seconds",
    "Time from sending a call to Belvo to having its whole answer (or giving up)",
    ["operation", "resource"],
    buckets=UPSTREAM_BUCKETS,
)
IN_FLIGHT = Gauge(
    "mfa_upstream_calls_in_flight", "Calls to Belvo sent and not yet answered", multiprocess_mode="livesum"
)
RETRIES = Counter("mfa_retries", "Attempts that will be retried, by what Belvo answered", ["reason"])
LEASES_RECOVERED = Counter(
    "mfa_leases_recovered",
    "Calls whose worker died mid-call, closed by a sweeper as upstream_outcome_unknown",
)
WEBHOOK_DELIVERIES = Counter("mfa_webhook_deliveries", "Webhook delivery attempts, by result", ["result"])
WEBHOOK_SECONDS = Histogram(
    "mfa_webhook_delivery_duration_seconds",
    "Time a webhook delivery attempt took",
    ["result"],
    buckets=WEBHOOK_BUCKETS,
)

_enabled = True
_CHILDREN: dict[tuple[object, ...], Any] = {}


def child(family: Counter | Gauge | Histogram, *labels: str) -> Any:
    """`family.labels(*labels)`, remembered: the same few are asked for on every request and every call,
    and labels() validates and locks each time. Every label value is bounded, so this is too."""
    key = (family, *labels)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = family.labels(*labels)
    return found


def enable(on: bool) -> None:
    """Count (True, the default) or not (METRICS_ENABLED=false)."""
    global _enabled
    _enabled = on


def bounded_code(code: object) -> str:
    """An outcome code fit for a label: known codes as they are, none as `none`, anything else `other`."""
    if code is None:
        return "none"
    return code if isinstance(code, str) and code in KNOWN_CODES else "other"


def status_class(status: int | None, failure: str | None = None) -> str:
    """`2xx`..`5xx` for an HTTP answer; `timeout` or `connection_error` for none."""
    if status is None:
        return "timeout" if failure == "timeout" else "connection_error"
    return f"{min(max(status // 100, 1), 5)}xx"


def session_created(status: str) -> None:
    """A session was stored in `status` (its first), which says where it came from."""
    if _enabled:
        child(SESSIONS_CREATED, ORIGINS.get(status, "other")).inc()


def session_closed(status: str, code: object, *, phase: str | None = None) -> None:
    """A transition ended a session in `status` with outcome `code`; `phase` for an expiry (or a failure
    at expiry): `awaiting_token` if the user never answered, `calling` if our call had not been made."""
    if not _enabled:
        return
    child(OUTCOMES, status, bounded_code(code)).inc()
    if status == "expired":
        child(EXPIRIES, "awaiting_token" if phase == "awaiting_token" else "calling").inc()


def retry_scheduled(status: int | None) -> None:
    """An attempt ended in a way that is retried: no answer, 408/425/429 or a 5xx."""
    if _enabled:
        reason = "no_answer" if status is None else ("5xx" if status >= 500 else str(status))
        child(RETRIES, reason).inc()


def lease_recovered() -> None:
    """A sweeper closed a call whose worker died mid-call."""
    if _enabled:
        LEASES_RECOVERED.inc()


class UpstreamCall:
    """One call being timed: `answered(status)` or `failed(reason)` says how it ended."""

    __slots__ = ("failure", "status")

    def __init__(self) -> None:
        self.status: int | None = None
        self.failure: str | None = None

    def answered(self, status: int) -> None:
        """Belvo answered with HTTP `status`."""
        self.status = status

    def failed(self, reason: str) -> None:
        """No answer: `timeout`, or the transport's error name."""
        self.failure = reason


@contextmanager
def upstream_call(operation: str, resource: str) -> Iterator[UpstreamCall]:
    """Count and time one call to Belvo, in flight meanwhile. A block that ends without `answered` or
    `failed` (it raised before any call could be made) is not counted as a call."""
    call = UpstreamCall()
    if not _enabled:
        yield call
        return
    resource = resource if resource in RESOURCES else "other"
    started = time.perf_counter()
    IN_FLIGHT.inc()
    try:
        yield call
    finally:
        IN_FLIGHT.dec()
        if call.status is not None or call.failure is not None:
            child(UPSTREAM_SECONDS, operation, resource).observe(time.perf_counter() - started)
            child(UPSTREAM_CALLS, operation, resource, status_class(call.status, call.failure)).inc()


def webhook_delivery(result: str, seconds: float) -> None:
    """A webhook delivery attempt ended: `delivered`, `retrying` (will be tried again), `failed` (given up)
    or `refused` (its address is not allowed); `seconds` is how long the attempt took."""
    if not _enabled:
        return
    label = result if result in WEBHOOK_RESULTS else "failed"
    child(WEBHOOK_DELIVERIES, label).inc()
    child(WEBHOOK_SECONDS, label).observe(seconds)
