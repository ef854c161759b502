"""GET /metrics: each family moves when, and only when, its event happens; no label takes an unbounded value.

The in-process service counts in this process's registry, shared by every test, so each test compares
the scrape after its flow with the scrape before it.
"""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mfa import metrics
from mfa.clock import now_ms
from mfa.keys import LEASES_ZSET, RETRIES_ZSET
from tests.receiver import receiving
from tests.support import first
from tests.test_webhooks import WEBHOOK_ENV, delivered
from worker.health import Heartbeat
from worker.sweeper import sweep_once

Sample = tuple[str, frozenset[tuple[str, str]]]


def scrape(api) -> dict[Sample, float]:
    r = api.request("GET", "/metrics", credential=None)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: dict[Sample, float], after: dict[Sample, float], name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def _submitted(api, sandbox, token: str = "111111", **pause):
    body = sandbox.pause(**pause)
    s = api.created(body)
    r = api.submit(s["id"], token, credential=s["client_secret"])
    assert r.status_code == 202, r.text
    return s, first(body)


def test_a_resume_moves_each_family_it_touches_once(api, sandbox):
    before = scrape(api)
    s, _ = _submitted(api, sandbox)
    assert api.wait(s["id"])["status"] == "succeeded"
    after = scrape(api)
    assert moved(before, after, "mfa_sessions_created_total", origin="handover") == 1
    assert moved(before, after, "mfa_token_submissions_total", answer="accepted") == 1
    assert moved(before, after, "mfa_outcomes_total", status="succeeded", code="none") == 1
    calls = {"operation": "resume", "resource": "links"}
    assert moved(before, after, "mfa_upstream_calls_total", status_class="2xx", **calls) == 1
    assert moved(before, after, "mfa_upstream_call_duration_seconds_count", **calls) == 1
    assert value(after, "mfa_upstream_calls_in_flight") == 0
    token_route = {"route": "/v1/sessions/<session_id>/token", "method": "POST"}
    assert moved(before, after, "mfa_http_requests_total", status="202", **token_route) == 1
    assert moved(before, after, "mfa_http_request_duration_seconds_count", **token_route) == 1


def test_flows_started_here_count_by_origin(api, sandbox):
    before = scrape(api)
    link = {"institution": "heimdall_mx_retail", "username": "user_valid", "password": "pass_valid"}
    assert api.request("POST", "/v1/links", json=link).status_code == 202
    retrieval = {"resource": "accounts", "link": first(sandbox.pause())["link"]}
    assert api.request("POST", "/v1/retrievals", json=retrieval).status_code == 202
    after = scrape(api)
    assert moved(before, after, "mfa_sessions_created_total", origin="registration") == 1
    assert moved(before, after, "mfa_sessions_created_total", origin="retrieval") == 1
    assert moved(before, after, "mfa_sessions_created_total", origin="handover") == 0


def test_token_submissions_are_counted_by_answer(api, sandbox):
    s = api.created(sandbox.pause())
    before = scrape(api)
    key = {"Idempotency-Key": "k-1"}
    assert api.submit(s["id"], "111111", credential=s["client_secret"], headers=key).status_code == 202
    assert api.submit(s["id"], "111111", credential=s["client_secret"], headers=key).status_code == 202
    assert api.submit(s["id"], "222222", credential=s["client_secret"]).status_code == 409
    assert api.submit(s["id"], "", credential=s["client_secret"]).status_code == 422
    after = scrape(api)
    answers = {"accepted": 1, "replayed": 1, "session_not_awaiting_token": 1, "validation_error": 1}
    for answer, count in answers.items():
        assert moved(before, after, "mfa_token_submissions_total", answer=answer) == count, answer


def test_a_5xx_counts_a_retry_and_the_call_by_class(api, sandbox):
    sandbox.fault("status", status=503, count=1)
    before = scrape(api)
    s, _ = _submitted(api, sandbox)
    assert api.wait(s["id"])["status"] == "succeeded"
    after = scrape(api)
    calls = {"operation": "resume", "resource": "links"}
    assert moved(before, after, "mfa_upstream_calls_total", status_class="5xx", **calls) == 1
    assert moved(before, after, "mfa_upstream_calls_total", status_class="2xx", **calls) == 1
    assert moved(before, after, "mfa_retries_total", reason="5xx") == 1


def test_a_rejected_token_counts_belvos_code(api, sandbox):
    before = scrape(api)
    s, _ = _submitted(api, sandbox, "738291")  # the sandbox rejects it: 400 invalid_token
    assert api.wait(s["id"])["outcome"]["code"] == "invalid_token"
    after = scrape(api)
    assert moved(before, after, "mfa_outcomes_total", status="failed", code="invalid_token") == 1
    calls = {"operation": "resume", "resource": "links"}
    assert moved(before, after, "mfa_upstream_calls_total", status_class="4xx", **calls) == 1


def test_an_expiry_is_counted_once_whoever_closes_it(api, sandbox):
    store = api.jobs.runner.store
    s = api.created(sandbox.pause(expiry=60))
    before = scrape(api)
    later = now_ms() + 61_000
    sweep_once(store, later)
    sweep_once(store, later)  # another sweeper's pass finds nothing left to do
    assert store.expire_due(s["id"], later) == "expired"  # nor does a reader's
    after = scrape(api)
    assert moved(before, after, "mfa_sessions_expired_total", phase="awaiting_token") == 1
    assert moved(before, after, "mfa_outcomes_total", status="expired", code="session_expired") == 1


def test_a_call_never_made_before_expiry_counts_as_a_calling_expiry(api, sandbox):
    store = api.jobs.runner.store
    s, _ = _submitted(api, sandbox, expiry=60)
    before = scrape(api)
    sweep_once(store, now_ms() + 61_000)  # the job never ran: the sweeper closes it
    after = scrape(api)
    assert moved(before, after, "mfa_sessions_expired_total", phase="calling") == 1
    assert moved(before, after, "mfa_sessions_expired_total", phase="awaiting_token") == 0
    assert api.get(s["id"]).json()["status"] == "expired"


def test_a_lapsed_lease_is_counted_when_a_sweeper_recovers_it(api, sandbox, redis):
    store = api.jobs.runner.store
    s, _ = _submitted(api, sandbox)
    now = now_ms()
    assert store.begin_call(s["id"], 1, now, 1000).verdict.value == "go"  # a worker took it, then died
    before = scrape(api)
    assert value(before, "mfa_calls_leased") == 1
    assert value(before, "mfa_overdue_seconds", list="leases") == 0
    redis.zadd(LEASES_ZSET, {s["id"]: now - 5000})  # its lease lapsed 5 s ago, unrecovered
    lapsed = scrape(api)
    assert value(lapsed, "mfa_overdue_seconds", list="leases") >= 5
    sweep_once(store, now_ms())
    after = scrape(api)
    assert moved(before, after, "mfa_leases_recovered_total") == 1
    assert moved(before, after, "mfa_outcomes_total", status="failed", code="upstream_outcome_unknown") == 1
    assert value(after, "mfa_overdue_seconds", list="leases") == 0


def test_backlog_gauges_read_the_queue_and_the_lists(api, sandbox, redis):
    idle = scrape(api)
    assert value(idle, "mfa_queue_jobs", queue="belvo-resume") == 0
    assert value(idle, "mfa_queue_oldest_job_age_seconds", queue="belvo-resume") == 0
    _submitted(api, sandbox)  # its job waits: nothing runs the queue until the test says so
    waiting = scrape(api)
    assert value(waiting, "mfa_queue_jobs", queue="belvo-resume") == 1
    assert 0 <= value(waiting, "mfa_queue_oldest_job_age_seconds", queue="belvo-resume") < 60
    assert value(waiting, "mfa_sessions_open") == 1
    redis.zadd(RETRIES_ZSET, {"mfa_other": now_ms() - 3000})
    assert value(scrape(api), "mfa_overdue_seconds", list="retries") >= 3
    assert value(scrape(api), "mfa_retries_pending") == 1


def test_live_workers_are_those_whose_heartbeat_is_recent(api, redis, tmp_path):
    assert value(scrape(api), "mfa_workers_live") == 0
    beat = Heartbeat(str(tmp_path / "hb"), "worker-a")
    beat.beat(redis, now_ms())
    Heartbeat(str(tmp_path / "hb2"), "worker-b").beat(redis, now_ms() - 60_000)  # gone a minute ago
    assert value(scrape(api), "mfa_workers_live") == 1
    beat.release(redis)  # a warm shutdown leaves the count at once
    assert value(scrape(api), "mfa_workers_live") == 0


def test_no_label_value_is_unbounded(api, sandbox):
    """After flows of every kind, every label value is from a closed set: no ids, no free text."""
    for token in ("111111", "738291", "999999"):
        _submitted(api, sandbox, token)
    api.tick()
    ids = re.compile(r"mfa_[0-9a-f]{8}|[0-9a-f]{32}|\d{6}")
    for (name, labels), _ in scrape(api).items():
        for label, text in labels:
            assert not ids.search(text), (name, label, text)
            if label == "code":
                assert text in metrics.KNOWN_CODES | {"none", "other"}, text
            if label == "route":
                assert text == "unmatched" or text.startswith("/"), text


@pytest.mark.parametrize(
    ("code", "label"),
    [(None, "none"), ("invalid_token", "invalid_token"), ("made_up_by_belvo", "other"), (42, "other")],
)
def test_outcome_codes_outside_the_known_set_are_other(code, label):
    assert metrics.bounded_code(code) == label


def test_an_unmatched_path_is_one_route(api):
    before = scrape(api)
    for path in ("/nope/1", "/nope/2", "/v1/sessions/x/y/z"):
        assert api.request("GET", path, credential=None).status_code == 404
    after = scrape(api)
    assert moved(before, after, "mfa_http_requests_total", route="unmatched", method="GET", status="404") == 3


def test_metrics_can_be_turned_off(make_api, sandbox):
    off = make_api(METRICS_ENABLED="false")
    try:
        assert off.request("GET", "/metrics", credential=None).status_code == 404
        before = metrics.OUTCOMES.labels("succeeded", "none")._value.get()
        s, _ = _submitted(off, sandbox)
        assert off.wait(s["id"])["status"] == "succeeded"
        assert metrics.OUTCOMES.labels("succeeded", "none")._value.get() == before
    finally:
        metrics.enable(True)  # the switch is process-wide: give the next test the default back


def test_webhook_deliveries_are_counted_by_result(make_api, sandbox):
    with receiving() as receiver:
        hooked = make_api(**WEBHOOK_ENV, WEBHOOK_URL=f"{receiver.url}/hook")
        before = scrape(hooked)
        receiver.plan("/hook", 500, 200, 400)
        hooked.created(sandbox.pause())  # its event: a 500, then delivered
        delivered(hooked, receiver, "/hook", 2)
        hooked.created(sandbox.pause())  # its event: a 400, failed at once
        delivered(hooked, receiver, "/hook", 3)
        after = scrape(hooked)
    for result in ("retrying", "delivered", "failed"):
        assert moved(before, after, "mfa_webhook_deliveries_total", result=result) == 1, result
        assert moved(before, after, "mfa_webhook_delivery_duration_seconds_count", result=result) == 1
