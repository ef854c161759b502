"""Redis clients for each kind of process, configured in one place.

Where Redis is, and how to reach it, comes from the settings:
  REDIS_URL          redis:// or rediss:// (TLS), with the process's ACL user and password in it
                     (redis://mfa-web:PASSWORD@host:6379/0); mfa/acl.py says what each user may do.
  REDIS_TLS_*        the CA that signs the server's certificate, and this client's certificate and key.
  REDIS_SENTINELS    host:port of each Sentinel. The primary is then found through them, and REDIS_URL's
                     host names the Sentinel service instead of a server (redis://mfa-web:PASSWORD@mfa/0),
                     as redis-rb and Sidekiq read it. A failover is followed on the next connection.
Every client is lazy: nothing connects until its first command.
"""

from __future__ import annotations

from enum import Enum
from typing import Any
from urllib.parse import unquote, urlsplit

from redis import Redis
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry
from redis.sentinel import Sentinel

from mfa.settings import Settings


class Role(str, Enum):
    """Who holds the connection; each fails and waits differently."""

    WEB = "web"  # inside a request: fail fast to a 503 rather than stack retries
    FEED = "feed"  # the web process's one subscription to the change feed (mfa/feed.py)
    WORKER = "worker"  # RQ's dequeue blocks on the socket: no read timeout
    SWEEPER = "sweeper"  # background loops: a read timeout, so an outage never hangs them


def _role_options(role: Role) -> dict[str, Any]:
    # No CLIENT SETINFO nor CLIENT MAINT_NOTIFICATIONS on connect: the ACL users (mfa/acl.py) are not
    # granted CLIENT (Redis before 7.2 has neither subcommand and refuses a rule that names one), and
    # maintenance notifications are a managed-cloud feature this service does not use.
    common: dict[str, Any] = {
        "health_check_interval": 30,
        "driver_info": None,
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }
    if role is Role.WEB:
        # One connection per command in flight: at most one per open request (WEB_CONNECTIONS).
        return {**common, "socket_connect_timeout": 1, "socket_timeout": 5, "retry": Retry(NoBackoff(), 1)}
    if role is Role.FEED:
        # No retries of its own: mfa/feed.py sees every failure, subscribes again and tells its readers.
        return {**common, "socket_connect_timeout": 1, "socket_timeout": 5, "retry": Retry(NoBackoff(), 0)}
    if role is Role.WORKER:
        return {**common, "socket_connect_timeout": 2}
    return {**common, "socket_connect_timeout": 2, "socket_timeout": 5}


def tls_options(settings: Settings) -> dict[str, Any]:
    """redis-py's TLS arguments from REDIS_TLS_*: the server's certificate is always verified."""
    options: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
    if settings.redis_tls_ca_file:
        options["ssl_ca_certs"] = settings.redis_tls_ca_file
    if settings.redis_tls_cert_file:
        options["ssl_certfile"] = settings.redis_tls_cert_file
        options["ssl_keyfile"] = settings.redis_tls_key_file
    return options


def connect(settings: Settings, role: Role) -> Redis:
    """A client for `role`; nothing connects until the first command."""
    options = _role_options(role)
    url = urlsplit(settings.redis_url)
    tls = url.scheme == "rediss"
    if tls:
        options.update(tls_options(settings))
    if not settings.redis_sentinels:
        return Redis.from_url(settings.redis_url, **options)
    client: Redis = sentinel_for(settings).master_for(  # type: ignore[no-untyped-call]
        unquote(url.hostname or "mfa"),
        redis_class=Redis,
        username=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else None,
        db=int(url.path.strip("/") or 0),
        ssl=tls,
        **options,
    )
    return client


def sentinel_for(settings: Settings) -> Sentinel:
    """The Sentinel group of REDIS_SENTINELS; its own short timeouts, so a dead sentinel is skipped fast."""
    sentinel_options: dict[str, Any] = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    if settings.redis_sentinel_username:
        sentinel_options["username"] = settings.redis_sentinel_username
    if settings.redis_sentinel_password:
        sentinel_options["password"] = settings.redis_sentinel_password
    if urlsplit(settings.redis_url).scheme == "rediss":
        sentinel_options.update(ssl=True, **tls_options(settings))
    return Sentinel(list(settings.redis_sentinels), sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
