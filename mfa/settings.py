"""Settings read from the environment, in one place; a missing required setting stops start-up."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from urllib.parse import urlsplit, urlunsplit

from mfa.destinations import DestinationPolicy, UnsafeDestination
from mfa.errors import ConfigError
from mfa.pause import DEFAULT_EXPIRY_SECONDS, MAX_EXPIRY_SECONDS
from mfa.sealing import MalformedKey, parse_private_keys, parse_public_key
from mfa.webhooks import WebhookSettings

__all__ = ["ConfigError", "Settings"]

DEFAULT_HEARTBEAT_FILE = os.path.join(tempfile.gettempdir(), "belvo-mfa-worker.heartbeat")
MIN_API_KEY_LENGTH = 32
# Variables each process must not hold: the other's secrets (compose, make dev and every test stack
# give each process only its own; start-up refuses the keys that would open the other's sealed data).
WEB_WITHHELD = frozenset(
    {
        "BELVO_SECRET_ID",
        "BELVO_SECRET_PASSWORD",
        "SEALING_PRIVATE_KEYS",
        "RESULT_PUBLIC_KEY",
        "WEBHOOK_SECRETS",
    }
)
WORKER_WITHHELD = frozenset(
    {"API_KEYS", "RESULT_PRIVATE_KEYS", "SEALING_PUBLIC_KEY", "BELVO_WEBHOOK_AUTHORIZATION"}
)
# Shown as *** in a repr (a Redis URL shows with its password masked).
SECRET_FIELDS = frozenset(
    {
        "api_keys",
        "belvo_secret_id",
        "belvo_secret_password",
        "sealing_private_keys",
        "result_private_keys",
        "redis_sentinel_password",
        "belvo_webhook_authorization",
    }
)
# One process runs its calls' Python on one core (the GIL): about 10 ms of CPU each, so past a few
# hundred calls in flight a process is CPU-bound however slow Belvo is. Beyond this, add processes.
MAX_WORKER_CONCURRENCY = 1024


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


def _at_most(name: str, value: int, maximum: int) -> int:
    if value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _log_format(env: Mapping[str, str]) -> str:
    raw = env.get("LOG_FORMAT", "json").strip().lower() or "json"
    if raw not in ("json", "text"):
        raise ConfigError(f"LOG_FORMAT must be json or text, got {raw!r}")
    return raw


def _links_enabled(env: Mapping[str, str]) -> bool:
    """LINKS_ENABLED: true, false, or auto (the default: on exactly when SEALING_PUBLIC_KEY is set)."""
    raw = env.get("LINKS_ENABLED", "auto").strip().lower() or "auto"
    if raw == "auto":
        return bool(env.get("SEALING_PUBLIC_KEY", "").strip())
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


def _keys(env: Mapping[str, str], name: str, private: bool) -> tuple[str, ...]:
    """A key variable's texts, checked at start-up; the error names the variable, never its value."""
    raw = env.get(name, "").strip()
    if not raw:
        return ()
    try:
        if private:
            parse_private_keys(raw)
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if "," in raw:
            raise MalformedKey("one public key seals; give exactly one")
        parse_public_key(raw)
        return (raw,)
    except MalformedKey as exc:
        raise ConfigError(f"{name}: {exc} (python -m mfa.sealing makes keys)") from None


def _masked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


@dataclass(frozen=True, repr=False)
class Settings:
    """Every knob of the web and worker processes; see the README's configuration table."""

    redis_url: str = "redis://127.0.0.1:6379/0"  # may carry a password: the repr masks it
    api_keys: tuple[str, ...] = ()
    belvo_base_url: str = ""
    belvo_secret_id: str = ""
    belvo_secret_password: str = ""
    upstream_timeout_seconds: float = 60.0
    resume_max_attempts: int = 5
    resume_backoff_seconds: float = 1.0
    session_retention_seconds: int = 86400
    idempotency_retention_seconds: int = 86400
    lease_seconds: float = 15.0
    sweep_interval_seconds: float = 0.5
    # Upstream calls one worker process keeps in flight: each mostly waits on Belvo (seconds) for
    # ~10 ms of CPU, so a process has room for dozens; see the README's Deploy section for sizing.
    worker_concurrency: int = 32
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
    auth_failure_limit_per_minute: int = 30
    # Sealing keys (mfa/sealing.py): the web seals with sealing_public_key and opens results with
    # result_private_keys; the worker opens with sealing_private_keys and seals results with
    # result_public_key. Empty: that process stores those values unsealed (README, Sealing).
    sealing_public_key: str = ""
    sealing_private_keys: tuple[str, ...] = ()
    result_public_key: str = ""
    result_private_keys: tuple[str, ...] = ()
    result_max_bytes: int = 1024 * 1024
    links_enabled: bool = False
    call_deadline_seconds: int = 900
    default_mfa_expiry_seconds: int = DEFAULT_EXPIRY_SECONDS  # a 428 without `expiry` is held this long
    # The Authorization header Belvo's webhooks carry, as set in Belvo's dashboard; unset: intake is off.
    belvo_webhook_authorization: str = ""
    link_events_retention_seconds: int = 30 * 86400
    max_body_bytes: int = 64 * 1024
    # Live status (app/live.py): a comment on an idle stream this often, and a stream's longest life.
    stream_heartbeat_seconds: float = 15.0
    stream_max_seconds: float = 600.0
    log_level: str = "INFO"
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    log_format: str = "json"  # one JSON object per line; `text` for a human at a terminal
    access_log: bool = True  # a line per HTTP request
    metrics_enabled: bool = True  # GET /metrics on the web; counting in both processes
    worker_metrics_port: int = 0  # the worker's own metrics endpoint; 0: none
    worker_metrics_host: str = "127.0.0.1"
    # Touched by the worker after each sweep that reached Redis; `python -m worker --check` reads it.
    worker_heartbeat_file: str = DEFAULT_HEARTBEAT_FILE
    # Redis beyond REDIS_URL: Sentinel, TLS files, and the replicas a submission waits for (README).
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_username: str = ""
    redis_sentinel_password: str = ""
    redis_tls_ca_file: str = ""
    redis_tls_cert_file: str = ""
    redis_tls_key_file: str = ""
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 500

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (or the given mapping)."""
        env = os.environ if env is None else env
        if env.get("CREDENTIALS_KEY", "").strip():
            raise ConfigError(
                "CREDENTIALS_KEY (Fernet) is replaced by public-key sealing: set SEALING_PUBLIC_KEY on the"
                " web and SEALING_PRIVATE_KEYS on the worker (python -m mfa.sealing); unset CREDENTIALS_KEY"
            )

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
            worker_concurrency=int(number("WORKER_CONCURRENCY", 32, int, minimum=1)),
            resume_queue=env.get("RESUME_QUEUE", cls.resume_queue).strip() or cls.resume_queue,
            cors_origins=_split(env.get("CORS_ORIGINS", "")),
            widget_frame_ancestors=_split(env.get("WIDGET_FRAME_ANCESTORS", "")),
            demo_page=_switch(env, "DEMO_PAGE"),
            rate_limit_per_minute=int(number("RATE_LIMIT_PER_MINUTE", 1200, int)),
            session_rate_limit_per_minute=int(number("SESSION_RATE_LIMIT_PER_MINUTE", 60, int)),
            trusted_proxy_count=int(number("TRUSTED_PROXY_COUNT", 0, int)),
            auth_failure_limit_per_minute=int(number("AUTH_FAILURE_LIMIT_PER_MINUTE", 30, int)),
            sealing_public_key="".join(_keys(env, "SEALING_PUBLIC_KEY", private=False)),
            sealing_private_keys=_keys(env, "SEALING_PRIVATE_KEYS", private=True),
            result_public_key="".join(_keys(env, "RESULT_PUBLIC_KEY", private=False)),
            result_private_keys=_keys(env, "RESULT_PRIVATE_KEYS", private=True),
            result_max_bytes=int(number("RESULT_MAX_BYTES", 1024 * 1024, int, minimum=1024)),
            links_enabled=_links_enabled(env),
            call_deadline_seconds=int(number("CALL_DEADLINE_SECONDS", 900, int, minimum=10)),
            default_mfa_expiry_seconds=_at_most(
                "DEFAULT_MFA_EXPIRY_SECONDS",
                int(number("DEFAULT_MFA_EXPIRY_SECONDS", DEFAULT_EXPIRY_SECONDS, int, minimum=1)),
                MAX_EXPIRY_SECONDS,
            ),
            belvo_webhook_authorization=env.get("BELVO_WEBHOOK_AUTHORIZATION", "").strip(),
            link_events_retention_seconds=int(
                number("LINK_EVENTS_RETENTION_SECONDS", 30 * 86400, int, minimum=60)
            ),
            max_body_bytes=int(number("MAX_BODY_BYTES", 64 * 1024, int, minimum=1024)),
            stream_heartbeat_seconds=number("STREAM_HEARTBEAT_SECONDS", 15.0, minimum=0.05),
            stream_max_seconds=number("STREAM_MAX_SECONDS", 600.0, minimum=1),
            log_level=env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO",
            webhooks=WebhookSettings.from_env(env),
            log_format=_log_format(env),
            access_log=_flag(env, "WEB_ACCESS_LOG", True),
            metrics_enabled=_flag(env, "METRICS_ENABLED", True),
            worker_metrics_port=int(number("WORKER_METRICS_PORT", 0, int)),
            worker_metrics_host=env.get("WORKER_METRICS_HOST", "").strip() or cls.worker_metrics_host,
            worker_heartbeat_file=env.get("WORKER_HEARTBEAT_FILE", "").strip() or DEFAULT_HEARTBEAT_FILE,
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

    @property
    def destination_policy(self) -> DestinationPolicy:
        """Where webhooks may go (WEBHOOK_ALLOW_HTTP, WEBHOOK_ALLOW_PRIVATE)."""
        return DestinationPolicy(self.webhooks.allow_http, self.webhooks.allow_private)

    def require_webhook_url(self) -> Settings:
        """Fail start-up when WEBHOOK_URL is set but could never receive a webhook."""
        if self.webhooks.url:
            try:
                self.destination_policy.check_url(self.webhooks.url)
            except UnsafeDestination as exc:
                raise ConfigError(f"WEBHOOK_URL: {exc}") from None
        return self

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS and value:
                value = "***"
            elif f.name == "redis_url":
                value = _masked_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__

    def require_web(self) -> Settings:
        """Fail start-up of the web process unless it can authenticate anyone and holds only its own keys.

        Returns the web's settings: the worker's Belvo credentials are dropped, so nothing in the web
        process holds them even when the environment does.
        """
        if self.sealing_private_keys:
            raise ConfigError(
                "SEALING_PRIVATE_KEYS must not be given to the web process: it seals with SEALING_PUBLIC_KEY,"
                " and only the worker may open bank credentials and MFA tokens"
            )
        if bool(self.sealing_public_key) != bool(self.result_private_keys):
            raise ConfigError("the web needs SEALING_PUBLIC_KEY and RESULT_PRIVATE_KEYS together, or neither")
        if self.links_enabled and not self.sealing_public_key:
            raise ConfigError(
                "LINKS_ENABLED needs SEALING_PUBLIC_KEY: bank credentials are only stored sealed"
            )
        if not self.api_keys:
            raise ConfigError("API_KEYS is required: a comma-separated list of backend API keys")
        if any(len(key) < MIN_API_KEY_LENGTH for key in self.api_keys):
            raise ConfigError(f"API_KEYS: every key must be at least {MIN_API_KEY_LENGTH} characters long")
        if self.demo_page and not self.links_enabled:
            raise ConfigError("DEMO_PAGE registers sandbox links: it needs SEALING_PUBLIC_KEY (links on)")
        self.require_webhook_url()
        # The web records where each session's webhooks go; it never signs them.
        webhooks = replace(self.webhooks, secrets=())
        return replace(
            self, belvo_secret_id="", belvo_secret_password="", result_public_key="", webhooks=webhooks
        )

    def require_worker(self) -> Settings:
        """Fail start-up of the worker unless it can reach and authenticate to Belvo.

        Returns the worker's settings: the web's API keys (and Belvo's webhook credential) are dropped,
        whatever the environment holds.
        """
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
        if self.worker_concurrency > MAX_WORKER_CONCURRENCY:
            raise ConfigError(
                f"WORKER_CONCURRENCY must be at most {MAX_WORKER_CONCURRENCY}; run more worker processes"
            )
        if self.result_private_keys:
            raise ConfigError(
                "RESULT_PRIVATE_KEYS must not be given to the worker: it seals results with"
                " RESULT_PUBLIC_KEY, and only the web opens them"
            )
        if bool(self.sealing_private_keys) != bool(self.result_public_key):
            raise ConfigError(
                "the worker needs SEALING_PRIVATE_KEYS and RESULT_PUBLIC_KEY together, or neither"
            )
        self.require_webhook_url()
        if self.webhooks.url and not self.webhooks.secrets:
            raise ConfigError("WEBHOOK_URL needs WEBHOOK_SECRETS on the worker: whsec_ secrets to sign with")
        if self.worker_metrics_port > 65535:
            raise ConfigError(f"WORKER_METRICS_PORT must be a TCP port, got {self.worker_metrics_port}")
        if not self.belvo_base_url.startswith(("http://", "https://")):
            raise ConfigError("BELVO_BASE_URL must start with http:// or https://")
        return replace(self, api_keys=(), sealing_public_key="", belvo_webhook_authorization="")


def role_env(env: Mapping[str, str], role: str) -> dict[str, str]:
    """`env` without the variables the other process's secrets live in (role: "web" or "worker")."""
    withheld = WEB_WITHHELD if role == "web" else WORKER_WITHHELD
    return {name: value for name, value in env.items() if name not in withheld}
