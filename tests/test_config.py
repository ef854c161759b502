"""Settings from the environment: the README's defaults, and start-up refusing what it cannot run with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app import create_app
from mfa.errors import ConfigError
from mfa.sealing import new_key_pair
from mfa.settings import WEB_WITHHELD, WORKER_WITHHELD, Settings, role_env
from tests.support import RESULT_PRIVATE_KEY, RESULT_PUBLIC_KEY, SEALING_PRIVATE_KEY, SEALING_PUBLIC_KEY

ROOT = Path(__file__).resolve().parent.parent
KEY = "k" * 32
WEB_KEYS = {"SEALING_PUBLIC_KEY": SEALING_PUBLIC_KEY, "RESULT_PRIVATE_KEYS": RESULT_PRIVATE_KEY}
WORKER_KEYS = {"SEALING_PRIVATE_KEYS": SEALING_PRIVATE_KEY, "RESULT_PUBLIC_KEY": RESULT_PUBLIC_KEY}
BELVO = {
    "BELVO_BASE_URL": "https://sandbox.belvo.test/",
    "BELVO_SECRET_ID": "secret-id",
    "BELVO_SECRET_PASSWORD": "very-secret-password",
}


def test_defaults_match_the_readme():
    settings = Settings.from_env({})
    assert settings.upstream_timeout_seconds == 60
    assert settings.resume_max_attempts == 5
    assert settings.resume_backoff_seconds == 1
    assert settings.session_retention_seconds == 86400
    assert settings.default_mfa_expiry_seconds == 600
    assert settings.belvo_webhook_authorization == ""  # the webhook intake is off
    assert settings.link_events_retention_seconds == 30 * 86400


def test_values_are_read_from_the_mapping():
    settings = Settings.from_env(
        {
            "UPSTREAM_TIMEOUT_SECONDS": "2.5",
            "RESUME_MAX_ATTEMPTS": "3",
            "RESUME_BACKOFF_SECONDS": "0.1",
            "SESSION_RETENTION_SECONDS": "3600",
            **BELVO,
        }
    )
    assert (settings.upstream_timeout_seconds, settings.resume_max_attempts) == (2.5, 3)
    assert (settings.resume_backoff_seconds, settings.session_retention_seconds) == (0.1, 3600)
    assert settings.belvo_base_url == "https://sandbox.belvo.test"


@pytest.mark.parametrize("env", [{}, {"API_KEYS": ""}, {"API_KEYS": " , ,"}])
def test_the_web_process_requires_api_keys(env):
    with pytest.raises(ConfigError, match="API_KEYS"):
        Settings.from_env(env).require_web()


def test_api_keys_are_split_on_commas_and_stripped():
    other = "o" * 40
    settings = Settings.from_env({"API_KEYS": f" {KEY} ,{other}, ,"}).require_web()
    assert settings.api_keys == (KEY, other)


@pytest.mark.parametrize("short", ["short", "k" * 31])
def test_an_api_key_under_32_characters_is_refused(short):
    with pytest.raises(ConfigError, match=r"API_KEYS.*32"):
        Settings.from_env({"API_KEYS": f"{KEY},{short}"}).require_web()
    assert Settings.from_env({"API_KEYS": "k" * 32}).require_web().api_keys == ("k" * 32,)


@pytest.mark.parametrize("missing", sorted(BELVO))
def test_the_worker_names_each_missing_belvo_variable(missing):
    env = {name: value for name, value in BELVO.items() if name != missing}
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env).require_worker()
    assert missing in str(raised.value)
    assert all(name not in str(raised.value) for name in env)


def test_the_worker_names_all_missing_belvo_variables_at_once():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({}).require_worker()
    assert all(name in str(raised.value) for name in BELVO)


def test_the_worker_runs_32_calls_at_once_by_default_and_refuses_more_than_1024():
    assert Settings.from_env({}).worker_concurrency == 32
    assert (
        Settings.from_env({**BELVO, "WORKER_CONCURRENCY": "1024"}).require_worker().worker_concurrency == 1024
    )
    with pytest.raises(ConfigError, match="WORKER_CONCURRENCY must be at most 1024"):
        Settings.from_env({**BELVO, "WORKER_CONCURRENCY": "1025"}).require_worker()


def test_the_worker_refuses_a_base_url_without_scheme():
    with pytest.raises(ConfigError, match="BELVO_BASE_URL"):
        Settings.from_env({**BELVO, "BELVO_BASE_URL": "sandbox.belvo.com"}).require_worker()


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("UPSTREAM_TIMEOUT_SECONDS", "sixty"),
        ("UPSTREAM_TIMEOUT_SECONDS", "0"),
        ("RESUME_MAX_ATTEMPTS", "2.5"),
        ("RESUME_MAX_ATTEMPTS", "0"),
        ("RESUME_BACKOFF_SECONDS", "1s"),
        ("RESUME_BACKOFF_SECONDS", "-1"),
        ("SESSION_RETENTION_SECONDS", "1d"),
        ("LEASE_SECONDS", "abc"),
        ("UPSTREAM_TIMEOUT_SECONDS", "nan"),
        ("RESUME_BACKOFF_SECONDS", "inf"),
        ("WORKER_CONCURRENCY", "0"),
        ("WORKER_CONCURRENCY", "eight"),
    ],
)
def test_a_malformed_number_names_its_variable(name, raw):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: raw})


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),
        ({"SEALING_PUBLIC_KEY": SEALING_PUBLIC_KEY}, True),
        ({"SEALING_PUBLIC_KEY": SEALING_PUBLIC_KEY, "LINKS_ENABLED": "false"}, False),
        ({"LINKS_ENABLED": "true"}, True),
    ],
)
def test_links_are_enabled_by_default_exactly_when_the_web_can_seal(env, enabled):
    assert Settings.from_env(env).links_enabled is enabled


def test_links_without_a_sealing_key_stop_the_web():
    with pytest.raises(ConfigError, match="SEALING_PUBLIC_KEY"):
        Settings.from_env({"API_KEYS": KEY, "LINKS_ENABLED": "true"}).require_web()


def test_a_malformed_links_enabled_names_its_variable():
    with pytest.raises(ConfigError, match="LINKS_ENABLED"):
        Settings.from_env({"LINKS_ENABLED": "maybe"})


_, OTHER_PUBLIC = new_key_pair()


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("SEALING_PUBLIC_KEY", "not-a-key"),
        ("SEALING_PUBLIC_KEY", SEALING_PRIVATE_KEY),  # the wrong half of the pair
        ("SEALING_PUBLIC_KEY", f"{SEALING_PUBLIC_KEY},{OTHER_PUBLIC}"),  # one key seals
        ("SEALING_PUBLIC_KEY", SEALING_PUBLIC_KEY[:-1]),
        ("SEALING_PRIVATE_KEYS", f"{SEALING_PRIVATE_KEY},mfa-sk-short"),
        ("SEALING_PRIVATE_KEYS", SEALING_PUBLIC_KEY),
        ("RESULT_PUBLIC_KEY", "mfa-pk-" + "!" * 43),
        ("RESULT_PRIVATE_KEYS", "2bE1t1bq9l0Hk7gQv7sQyq0Ykq0m3fW8m6o2b3WcX0A="),  # a Fernet key
    ],
)
def test_a_malformed_sealing_key_stops_start_up_naming_its_variable_not_its_value(name, raw):
    with pytest.raises(ConfigError, match=name) as raised:
        Settings.from_env({name: raw})
    assert raw not in str(raised.value)
    assert "python -m mfa.sealing" in str(raised.value)


def test_a_leftover_fernet_credentials_key_stops_start_up_with_the_migration():
    with pytest.raises(ConfigError, match=r"CREDENTIALS_KEY.*SEALING_PUBLIC_KEY.*SEALING_PRIVATE_KEYS"):
        Settings.from_env({"CREDENTIALS_KEY": "2bE1t1bq9l0Hk7gQv7sQyq0Ykq0m3fW8m6o2b3WcX0A="})


def test_each_process_refuses_the_key_that_opens_the_others_sealed_data():
    with pytest.raises(ConfigError, match="SEALING_PRIVATE_KEYS must not be given to the web"):
        Settings.from_env({"API_KEYS": KEY, **WEB_KEYS, **WORKER_KEYS}).require_web()
    with pytest.raises(ConfigError, match="RESULT_PRIVATE_KEYS must not be given to the worker"):
        Settings.from_env({**BELVO, **WORKER_KEYS, **WEB_KEYS}).require_worker()
    # Each with its own share starts, and keeps none of the other's secrets in its settings.
    web = Settings.from_env(
        role_env({"API_KEYS": KEY, **BELVO, **WEB_KEYS, **WORKER_KEYS}, "web")
    ).require_web()
    assert web.sealing_public_key == SEALING_PUBLIC_KEY and web.result_private_keys == (RESULT_PRIVATE_KEY,)
    assert not (web.sealing_private_keys or web.belvo_secret_password or web.belvo_secret_id)
    worker = Settings.from_env(role_env({"API_KEYS": KEY, **BELVO, **WEB_KEYS, **WORKER_KEYS}, "worker"))
    worker = worker.require_worker()
    assert (
        worker.sealing_private_keys == (SEALING_PRIVATE_KEY,)
        and worker.result_public_key == RESULT_PUBLIC_KEY
    )
    assert not (worker.api_keys or worker.result_private_keys)


def test_the_web_drops_belvo_secrets_and_the_worker_api_keys_even_when_given():
    """The container check starts both with one environment (API_KEYS and BELVO_* each): neither keeps
    the other's secret in its settings."""
    both = {"API_KEYS": KEY, **BELVO}
    assert not Settings.from_env(both).require_web().belvo_secret_password
    assert Settings.from_env(both).require_worker().api_keys == ()


@pytest.mark.parametrize(
    "env",
    [{"SEALING_PUBLIC_KEY": SEALING_PUBLIC_KEY}, {"RESULT_PRIVATE_KEYS": RESULT_PRIVATE_KEY}],
)
def test_the_web_needs_both_of_its_keys_or_neither(env):
    with pytest.raises(ConfigError, match="together, or neither"):
        Settings.from_env({"API_KEYS": KEY, "LINKS_ENABLED": "false", **env}).require_web()


@pytest.mark.parametrize(
    "env",
    [{"SEALING_PRIVATE_KEYS": SEALING_PRIVATE_KEY}, {"RESULT_PUBLIC_KEY": RESULT_PUBLIC_KEY}],
)
def test_the_worker_needs_both_of_its_keys_or_neither(env):
    with pytest.raises(ConfigError, match="together, or neither"):
        Settings.from_env({**BELVO, **env}).require_worker()


def test_no_secret_appears_in_the_repr():
    redis_password = "redis-password-in-the-url"
    env = {
        **BELVO,
        **WEB_KEYS,
        **WORKER_KEYS,
        "API_KEYS": f"{KEY},{'o' * 40}",
        "REDIS_URL": f"redis://default:{redis_password}@redis.internal:6379/0",
        "BELVO_WEBHOOK_AUTHORIZATION": "Bearer webhook-secret-0123456789",
    }
    settings = Settings.from_env(env)
    assert settings.belvo_secret_password == BELVO["BELVO_SECRET_PASSWORD"]
    secrets = [
        BELVO["BELVO_SECRET_PASSWORD"],
        BELVO["BELVO_SECRET_ID"],
        KEY,
        "o" * 40,
        SEALING_PRIVATE_KEY,
        RESULT_PRIVATE_KEY,
        redis_password,
        "webhook-secret-0123456789",
    ]
    web = Settings.from_env(role_env(env, "web")).require_web()
    for shown in (repr(settings), str(settings), f"{settings}", repr(web)):
        assert [s for s in secrets if s in shown] == [], shown
    assert "redis.internal:6379" in repr(settings) and SEALING_PUBLIC_KEY in repr(settings)


def test_the_worker_never_holds_belvos_webhook_credential():
    env = {**BELVO, "BELVO_WEBHOOK_AUTHORIZATION": "Bearer webhook-secret-0123456789"}
    assert "BELVO_WEBHOOK_AUTHORIZATION" not in role_env(env, "worker")
    assert Settings.from_env(env).require_worker().belvo_webhook_authorization == ""


@pytest.mark.parametrize("raw", ["0", "604801", "ten"])
def test_the_default_mfa_expiry_is_a_positive_number_of_seconds_of_at_most_a_week(raw):
    with pytest.raises(ConfigError, match="DEFAULT_MFA_EXPIRY_SECONDS"):
        Settings.from_env({"DEFAULT_MFA_EXPIRY_SECONDS": raw})
    assert Settings.from_env({"DEFAULT_MFA_EXPIRY_SECONDS": "720"}).default_mfa_expiry_seconds == 720


def test_the_worker_process_exits_naming_the_missing_variables():
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("BELVO_", "LINKS_", "SEALING_", "RESULT_"))
    }
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"  # never reached: configuration is checked first
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert all(name in done.stderr for name in BELVO), done.stderr


def test_create_app_without_api_keys_raises():
    with pytest.raises(ConfigError, match="API_KEYS"):
        create_app({"API_KEYS": ""})


def test_compose_gives_each_service_only_its_own_secrets():
    """docker-compose.yml: the web never gets the worker's secrets, nor the worker the web's, and the
    sandbox gets fixed credentials of its own, never the BELVO_* a deployment sets for real Belvo."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    web, worker = services["web"]["environment"], services["worker"]["environment"]
    assert not set(web) & WEB_WITHHELD and not set(worker) & WORKER_WITHHELD
    assert {"API_KEYS", "SEALING_PUBLIC_KEY", "RESULT_PRIVATE_KEYS"} <= set(web)
    assert {"BELVO_SECRET_PASSWORD", "SEALING_PRIVATE_KEYS", "RESULT_PUBLIC_KEY"} <= set(worker)
    assert not any("${" in str(value) for value in services["sandbox"]["environment"].values())
