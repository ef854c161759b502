"""The rules of a delivery (mfa/delivery.py, mfa/webhooks.py): verdicts, schedule, secrets, payloads."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook

from mfa.delivery import verdict
from mfa.destinations import Answer
from mfa.errors import ConfigError
from mfa.session import Audience, MfaSession, NewSession, SessionStatus
from mfa.settings import Settings
from mfa.webhooks import (
    DeliveryStatus,
    Signer,
    WebhookSettings,
    next_attempt_at,
    parse_schedule,
    parse_secret,
    render_payload,
)

KEY = b"k" * 32
SECRET = "whsec_" + base64.b64encode(KEY).decode()


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (200, None, DeliveryStatus.DELIVERED),
        (204, None, DeliveryStatus.DELIVERED),
        (299, None, DeliveryStatus.DELIVERED),
        (301, None, DeliveryStatus.FAILED),  # redirects are not followed
        (400, None, DeliveryStatus.FAILED),
        (401, None, DeliveryStatus.FAILED),
        (404, None, DeliveryStatus.FAILED),
        (410, None, DeliveryStatus.FAILED),
        (408, None, None),
        (429, None, None),
        (500, None, None),
        (503, None, None),
        (None, "timeout", None),
        (None, "connection error: refused or unreachable", None),
        (None, "destination refused: 127.0.0.1 is a loopback address", DeliveryStatus.FAILED),
    ],
)
def test_what_each_answer_means(status, error, expected):
    assert verdict(Answer(status, error, 5)) is expected


def test_the_default_schedule_is_standard_webhooks_recommendation():
    assert WebhookSettings().schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert parse_schedule("0.5, 2s,1m ,1h") == (0.5, 2, 60, 3600)
    for bad in ("", "5x", "-1", "1,,2", "soon"):
        with pytest.raises(ConfigError):
            parse_schedule(bad)


def test_each_wait_has_jitter_never_runs_early_of_retry_after_and_ends_with_the_schedule():
    schedule = (10.0, 100.0)
    waits = {next_attempt_at(schedule, 1, None, 0) for _ in range(200)}
    assert all(9000 <= w <= 11000 for w in waits) and len(waits) > 50  # spread, within 10%
    assert all(next_attempt_at(schedule, 1, 60.0, 0) >= 60_000 for _ in range(50))
    assert next_attempt_at(schedule, 2, 10**9, 0) == 86_400_000  # Retry-After capped at a day
    assert next_attempt_at(schedule, 3, None, 0) is None  # 1 + len(schedule) attempts in all


def test_secrets_are_whsec_base64_of_24_to_64_bytes():
    assert parse_secret(SECRET) == KEY
    for bad in ("k" * 32, "whsec_" + base64.b64encode(b"k" * 8).decode(), "whsec_not base64!"):
        with pytest.raises(ConfigError):
            parse_secret(bad)


def test_one_signature_per_secret_each_verifying_on_its_own():
    other = "whsec_" + base64.b64encode(b"o" * 32).decode()
    headers = Signer((KEY, parse_secret(other))).headers("evt_1", 1_700_000_000, '{"a":1}')
    assert headers["webhook-id"] == "evt_1" and headers["webhook-timestamp"] == "1700000000"
    assert [s[:3] for s in headers["webhook-signature"].split(" ")] == ["v1,", "v1,"]
    when = datetime.fromtimestamp(1_700_000_000, timezone.utc)
    for secret in (SECRET, other):
        assert Webhook(secret).sign("evt_1", when, '{"a":1}') in headers["webhook-signature"].split(" ")


def test_the_payload_is_the_session_as_an_api_key_reads_it_as_of_the_change():
    session = NewSession(SessionStatus.AWAITING_TOKEN, "links", "h", 600, belvo_session="b").build("mfa_x", 0)
    record = {**session.to_record(), "status": "succeeded", "outcome": json.dumps({"http_status": 201})}
    body = json.loads(render_payload("evt_x_2", "session.succeeded", 5_000, 2, 1, record=record))
    assert body == {
        "id": "evt_x_2",
        "type": "session.succeeded",
        "created_at": "1970-01-01T00:00:05.000Z",
        "sequence": 2,
        "step": 1,
        "data": MfaSession.from_record(record).public(5_000, Audience.BACKEND),
    }
    assert body["data"]["outcome"]["http_status"] == 201 and body["data"]["outcome"]["result"] is None


def test_webhook_url_needs_secrets_on_the_worker_and_https_unless_allowed():
    base = {"BELVO_BASE_URL": "http://b", "BELVO_SECRET_ID": "i", "BELVO_SECRET_PASSWORD": "p"}
    with pytest.raises(ConfigError, match="WEBHOOK_SECRETS"):
        Settings.from_env({**base, "WEBHOOK_URL": "https://h.example/"}).require_worker()
    with pytest.raises(ConfigError, match="WEBHOOK_URL"):
        Settings.from_env(
            {**base, "WEBHOOK_URL": "http://h.example/", "WEBHOOK_SECRETS": SECRET}
        ).require_worker()
    Settings.from_env(
        {**base, "WEBHOOK_URL": "https://h.example/", "WEBHOOK_SECRETS": SECRET}
    ).require_worker()
    for bad in (
        {"WEBHOOK_TIMEOUT_SECONDS": "0"},
        {"WEBHOOK_CONCURRENCY": "x"},
        {"WEBHOOK_ALLOW_HTTP": "maybe"},
    ):
        with pytest.raises(ConfigError):
            Settings.from_env(bad)
