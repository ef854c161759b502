"""Settings from the environment: the README's defaults, and start-up refusing what it cannot run with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app import create_app
from mfa.errors import ConfigError
from mfa.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
KEY = "k" * 16
FERNET_KEY = Fernet.generate_key().decode()
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
    other = "o" * 20
    settings = Settings.from_env({"API_KEYS": f" {KEY} ,{other}, ,"}).require_web()
    assert settings.api_keys == (KEY, other)


def test_a_short_api_key_is_refused():
    with pytest.raises(ConfigError, match="API_KEYS"):
        Settings.from_env({"API_KEYS": f"{KEY},short"}).require_web()


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
    ],
)
def test_a_malformed_number_names_its_variable(name, raw):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: raw})


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),
        ({"CREDENTIALS_KEY": FERNET_KEY}, True),
        ({"CREDENTIALS_KEY": FERNET_KEY, "LINKS_ENABLED": "false"}, False),
        ({"LINKS_ENABLED": "true"}, True),
    ],
)
def test_links_are_enabled_by_default_exactly_when_a_credentials_key_is_set(env, enabled):
    assert Settings.from_env(env).links_enabled is enabled


@pytest.mark.parametrize("env", [{"LINKS_ENABLED": "true"}, {"CREDENTIALS_KEY": "not-a-fernet-key"}])
def test_links_without_a_usable_credentials_key_stop_both_processes(env):
    settings = Settings.from_env({**BELVO, "API_KEYS": KEY, **env})
    for require in (settings.require_web, settings.require_worker):
        with pytest.raises(ConfigError, match="CREDENTIALS_KEY"):
            require()


def test_a_malformed_links_enabled_names_its_variable():
    with pytest.raises(ConfigError, match="LINKS_ENABLED"):
        Settings.from_env({"LINKS_ENABLED": "maybe"})


def test_the_secrets_never_appear_in_the_repr():
    webhook = "Bearer webhook-secret-0123456789"
    settings = Settings.from_env(
        {**BELVO, "CREDENTIALS_KEY": FERNET_KEY, "BELVO_WEBHOOK_AUTHORIZATION": webhook}
    )
    assert settings.belvo_secret_password == BELVO["BELVO_SECRET_PASSWORD"]
    assert settings.belvo_webhook_authorization == webhook
    assert BELVO["BELVO_SECRET_PASSWORD"] not in repr(settings)
    assert FERNET_KEY not in repr(settings) and "webhook-secret" not in repr(settings)


@pytest.mark.parametrize("raw", ["0", "604801", "ten"])
def test_the_default_mfa_expiry_is_a_positive_number_of_seconds_of_at_most_a_week(raw):
    with pytest.raises(ConfigError, match="DEFAULT_MFA_EXPIRY_SECONDS"):
        Settings.from_env({"DEFAULT_MFA_EXPIRY_SECONDS": raw})
    assert Settings.from_env({"DEFAULT_MFA_EXPIRY_SECONDS": "720"}).default_mfa_expiry_seconds == 720


def test_the_worker_process_exits_naming_the_missing_variables():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BELVO_", "LINKS_", "CREDENTIALS_"))}
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
