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


def _addresses(name: str, raw: str) -> tuple[tuple[str, int], ...]:
    """host:port,host:port as pairs; a malformed entry stops start-up naming the variable."""
    found = []
    for entry in _split(raw):
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name}: {entry!r} is not host:port")
        found.append((host.strip("[]"), int(port)))
    return tuple(found)


def _file(env: Mapping[str, str], name: str) -> str:
    """A path that must name a readable file when set (a typo should stop start-up, not the first connect)."""
    path = env.get(name, "").strip()
    if path and not os.access(path, os.R_OK):
        raise ConfigError(f"{name}: cannot read {path}")
    return path


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


@dataclass(frozen=True)
class Settings:
    """Every knob of the web and worker processes; see the README's configuration table."""

    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)  # may carry a password
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
    # Redis beyond REDIS_URL: Sentinel, TLS files, and the replicas a submission waits for (README).
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_username: str = ""
    redis_sentinel_password: str = field(default="", repr=False)
    redis_tls_ca_file: str = ""
    redis_tls_cert_file: str = ""
    redis_tls_key_file: str = ""
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 500

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
            rate_limit_per_minute=int(number("RATE_LIMIT_PER_MINUTE", 1200, int)),
            session_rate_limit_per_minute=int(number("SESSION_RATE_LIMIT_PER_MINUTE", 60, int)),
            trusted_proxy_count=int(number("TRUSTED_PROXY_COUNT", 0, int)),
            credentials_key=env.get("CREDENTIALS_KEY", "").strip(),
            links_enabled=_links_enabled(env),
            call_deadline_seconds=int(number("CALL_DEADLINE_SECONDS", 900, int, minimum=10)),
            max_body_bytes=int(number("MAX_BODY_BYTES", 64 * 1024, int, minimum=1024)),
            log_level=env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO",
            redis_sentinels=_addresses("REDIS_SENTINELS", env.get("REDIS_SENTINELS", "")),
            redis_sentinel_username=env.get("REDIS_SENTINEL_USERNAME", "").strip(),
            redis_sentinel_password=env.get("REDIS_SENTINEL_PASSWORD", ""),
            redis_tls_ca_file=_file(env, "REDIS_TLS_CA_FILE"),
            redis_tls_cert_file=_file(env, "REDIS_TLS_CERT_FILE"),
            redis_tls_key_file=_file(env, "REDIS_TLS_KEY_FILE"),
            redis_wait_replicas=int(number("REDIS_WAIT_REPLICAS", 0, int)),
            redis_wait_timeout_ms=int(number("REDIS_WAIT_TIMEOUT_MS", 500, int, minimum=1)),
        ).require_redis()

    def require_redis(self) -> Settings:
        """Fail start-up on a Redis configuration that cannot work (checked for every process)."""
        scheme = self.redis_url.partition("://")[0]
        if scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {scheme}://")
        if bool(self.redis_tls_cert_file) != bool(self.redis_tls_key_file):
            raise ConfigError(
                "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together (the client certificate)"
            )
        tls_files = self.redis_tls_ca_file or self.redis_tls_cert_file
        if tls_files and scheme != "rediss":
            raise ConfigError("REDIS_TLS_* files are set but REDIS_URL is not rediss://")
        if self.redis_sentinels and scheme == "unix":
            raise ConfigError("REDIS_SENTINELS needs REDIS_URL=redis://[user:password@]SERVICE[/db]")
        return self

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
