"""Settings read from the environment, in one place; a missing required setting stops start-up."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.fernet import Fernet

from mfa.errors import ConfigError

__all__ = ["ConfigError", "Settings"]


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _links_enabled(env: Mapping[str, str]) -> bool:
    """LINKS_ENABLED: true, false, or auto (the default: on exactly when CREDENTIALS_KEY is set)."""
    raw = env.get("LINKS_ENABLED", "auto").strip().lower() or "auto"
    if raw == "auto":
        return bool(env.get("CREDENTIALS_KEY", "").strip())
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"LINKS_ENABLED must be true, false or auto, got {raw!r}")


def _switch(env: Mapping[str, str], name: str) -> bool:
    """An on/off setting that is off unless set to true."""
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Every knob of the web and worker processes; see the README's configuration table."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    api_keys: tuple[str, ...] = ()
    belvo_base_url: str = ""
    belvo_secret_id: str = ""
    belvo_secret_password: str = field(default="", repr=False)
    upstream_timeout_seconds: float = 60.0
    resume_max_attempts: int = 5
    resume_backoff_seconds: float = 1.0
    session_retention_seconds: int = 86400
    idempotency_retention_seconds: int = 86400
    lease_seconds: float = 15.0
    sweep_interval_seconds: float = 0.5
    resume_queue: str = "belvo-resume"
    cors_origins: tuple[str, ...] = ()
    # Pages that may show the MFA widget in an iframe (CSP frame-ancestors; app/frontend.py).
    widget_frame_ancestors: tuple[str, ...] = ()
    # The demo at / that plays a backend with the first API key: for `make dev` only.
    demo_page: bool = False
    # Generous defaults: a page polling its session and 50 racing submits of one step stay within them.
    rate_limit_per_minute: int = 1200
    session_rate_limit_per_minute: int = 60
    # Reverse proxies in front of gunicorn that append X-Forwarded-For; 0 trusts no such header.
    trusted_proxy_count: int = 0
    credentials_key: str = field(default="", repr=False)
    links_enabled: bool = False
    call_deadline_seconds: int = 900
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (or the given mapping)."""
        env = os.environ if env is None else env

        def number(name: str, default: float, kind: type[float] = float, minimum: float = 0) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value: float = kind(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
            if not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {raw!r}")
            if value < minimum:
                raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
            return value

        return cls(
            redis_url=env.get("REDIS_URL", cls.redis_url).strip() or cls.redis_url,
            api_keys=_split(env.get("API_KEYS", "")),
            belvo_base_url=env.get("BELVO_BASE_URL", "").strip().rstrip("/"),
            belvo_secret_id=env.get("BELVO_SECRET_ID", "").strip(),
            belvo_secret_password=env.get("BELVO_SECRET_PASSWORD", ""),
            upstream_timeout_seconds=number("UPSTREAM_TIMEOUT_SECONDS", 60.0, minimum=0.05),
            resume_max_attempts=int(number("RESUME_MAX_ATTEMPTS", 5, int, minimum=1)),
            resume_backoff_seconds=number("RESUME_BACKOFF_SECONDS", 1.0),
            session_retention_seconds=int(number("SESSION_RETENTION_SECONDS", 86400, int, minimum=1)),
            idempotency_retention_seconds=int(number("IDEMPOTENCY_RETENTION_SECONDS", 86400, int, minimum=1)),
            lease_seconds=number("LEASE_SECONDS", 15.0, minimum=1),
            sweep_interval_seconds=number("SWEEP_INTERVAL_SECONDS", 0.5, minimum=0.05),
            resume_queue=env.get("RESUME_QUEUE", cls.resume_queue).strip() or cls.resume_queue,
            cors_origins=_split(env.get("CORS_ORIGINS", "")),
            widget_frame_ancestors=_split(env.get("WIDGET_FRAME_ANCESTORS", "")),
            demo_page=_switch(env, "DEMO_PAGE"),
            rate_limit_per_minute=int(number("RATE_LIMIT_PER_MINUTE", 1200, int)),
            session_rate_limit_per_minute=int(number("SESSION_RATE_LIMIT_PER_MINUTE", 60, int)),
            trusted_proxy_count=int(number("TRUSTED_PROXY_COUNT", 0, int)),
            credentials_key=env.get("CREDENTIALS_KEY", "").strip(),
            links_enabled=_links_enabled(env),
            call_deadline_seconds=int(number("CALL_DEADLINE_SECONDS", 900, int, minimum=10)),
            max_body_bytes=int(number("MAX_BODY_BYTES", 64 * 1024, int, minimum=1024)),
            log_level=env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO",
        )

    def require_credentials_key(self) -> Settings:
        """Fail start-up when /v1/links is on without a usable Fernet key for bank credentials."""
        if not self.links_enabled:
            return self
        if not self.credentials_key:
            raise ConfigError("LINKS_ENABLED needs CREDENTIALS_KEY: a Fernet key (Fernet.generate_key())")
        try:
            Fernet(self.credentials_key)
        except ValueError:
            raise ConfigError("CREDENTIALS_KEY is not a Fernet key (32 url-safe base64 bytes)") from None
        return self

    def require_web(self) -> Settings:
        """Fail start-up of the web process unless it can authenticate anyone."""
        self.require_credentials_key()
        if not self.api_keys:
            raise ConfigError("API_KEYS is required: a comma-separated list of backend API keys")
        if any(len(key) < 16 for key in self.api_keys):
            raise ConfigError("API_KEYS: every key must be at least 16 characters long")
        if self.demo_page and not self.links_enabled:
            raise ConfigError("DEMO_PAGE registers sandbox links: it needs CREDENTIALS_KEY (links enabled)")
        return self

    def require_worker(self) -> Settings:
        """Fail start-up of the worker unless it can reach and authenticate to Belvo."""
        missing = [
            name
            for name, value in (
                ("BELVO_BASE_URL", self.belvo_base_url),
                ("BELVO_SECRET_ID", self.belvo_secret_id),
                ("BELVO_SECRET_PASSWORD", self.belvo_secret_password),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"{', '.join(missing)} required by the worker (see README, Configuration)")
        self.require_credentials_key()
        if not self.belvo_base_url.startswith(("http://", "https://")):
            raise ConfigError("BELVO_BASE_URL must start with http:// or https://")
        return self
