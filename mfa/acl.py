"""Who may do what in Redis: the ACL users the web and the worker connect as, and those Redis itself needs.

Anyone who can write to our keys can make the worker run code (RQ imports the function path stored with
a job), so Redis answers only these users, each with the commands and keys its code sends:

  mfa-web       the web processes: read sessions, run the transitions a request makes, enqueue a job
                (RQ's enqueue, inside our MULTI), idempotency records, rate-limit counters, publish changes
  mfa-worker    the worker processes: all of the web's, plus RQ's worker (dequeue, registries, its own
                registration, CLIENT SETNAME/INFO), stream consumer groups and subscriptions
  mfa-replica   a replica's link to its primary (masteruser); replication commands only
  mfa-sentinel  Sentinel's link to each server (sentinel auth-user); the commands Redis's docs list for it

Only the worker may take a job off a queue, touch a worker's registration or a job registry, or name its
connection: `tests/test_acl.py` proves the web's credential is refused each of these. Every test
stack runs with these users, so a command the code starts to send fails the suite until it is added here
(in the list of the role that sends it, with the code that sends it). Rules keep to what Redis 6.2 reads.

`python -m mfa.acl FILE` writes an ACL file (Redis's aclfile) for the passwords in the environment:
REDIS_WEB_PASSWORD and REDIS_WORKER_PASSWORD, and optionally REDIS_REPLICA_PASSWORD,
REDIS_SENTINEL_AUTH_PASSWORD and REDIS_ADMIN_PASSWORD (the `default` user, disabled without one).
The file holds each password's SHA-256, never the password.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from redis import Redis

from mfa.keys import PREFIX

RQ_PREFIX = "rq:"

# Both roles: our scripts and transactions, reads of the session and its change log, RQ's enqueue.
_SESSIONS = (
    "ping",  # /readyz, and redis-py's health checks
    "evalsha",  # the transitions (mfa/scripts.py) and the rate limiter, loaded on first use
    "eval",
    "script|load",
    "script|exists",  # a pipeline checks its scripts are loaded before MULTI
    "watch",  # submit_token's WATCH/MULTI
    "unwatch",
    "multi",
    "exec",
    "discard",
    "hgetall",
    "hmget",
    "hget",
    "hset",
    "hdel",
    "hincrby",
    "hexists",
    "get",
    "set",
    "del",
    "exists",
    "expire",
    "pexpire",
    "persist",
    "ttl",
    "pttl",
    "incr",  # rate-limit windows
    "zadd",
    "zrem",
    "zscore",
    "zrangebyscore",
    "zrange",  # a session's Idempotency-Keys (app/idempotency.py)
    "zremrangebyscore",
    "zrevrangebyscore",  # look-ups by external_ref (mfa:ref:*), newest first
    "zremrangebyrank",  # ... which keep the newest REFS_KEPT
    "zcard",
    "zcount",  # the backlog gauges (mfa/backlog.py)
    "rpush",  # RQ's enqueue
    "lpush",
    "llen",
    "lrange",  # a webhook event's attempts, read by GET /v1/events
    "sadd",
    "smembers",
    "sismember",
    "xadd",  # the change log mfa:events:{id}, and outboxes
    "xrange",
    "xrevrange",
    "xlen",
    "publish",  # mfa:changed
    "wait",  # REDIS_WAIT_REPLICAS (mfa/durability.py)
    "info",  # RQ reads the server's version, once per client, when it first enqueues or dequeues
)
# The web only: live status follows mfa:changed.
_WEB_ONLY = ("subscribe", "unsubscribe", "psubscribe", "punsubscribe", "xread")
# The worker only: RQ's worker and its registries, and consumers of streams.
_WORKER_ONLY = (
    "blmove",  # RQ's reliable dequeue (one queue, Redis >= 6.2)
    "lmove",
    "blpop",
    "lpop",
    "lrem",
    "lpos",
    "rename",
    "srem",
    "scard",
    "hincrbyfloat",
    "ltrim",  # a webhook event's attempts (mfa:webhook-attempts:*)
    "client|setname",  # RQ names the worker's connection
    "client|info",
    "client|list",  # RQ's fallback where CLIENT INFO is missing
    "subscribe",  # RQ's command channel rq:pubsub:{worker}
    "unsubscribe",
    "psubscribe",
    "punsubscribe",
    "xread",
    "xreadgroup",
    "xack",
    "xautoclaim",
    "xclaim",
    "xpending",
    "xgroup|create",
    "xgroup|createconsumer",
    "xtrim",
    "xdel",
    "xinfo|groups",
    "xinfo|stream",
    "xinfo|consumers",  # the outbox finds dead deliverers (mfa/outbox.lua)
)


@dataclass(frozen=True)
class AclUser:
    """One ACL user: its name, commands, key patterns and pub/sub channel patterns."""

    name: str
    commands: tuple[str, ...]
    keys: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    def rules(self, password: str) -> list[str]:
        """ACL SETUSER rules, the password as its SHA-256 (Redis never needs the password itself)."""
        digest = hashlib.sha256(password.encode()).hexdigest()
        return [
            "reset",
            "on",
            f"#{digest}",
            *(f"~{pattern}" for pattern in self.keys),
            "resetchannels",
            *(f"&{pattern}" for pattern in self.channels),
            "-@all",
            *(f"+{command}" for command in sorted(set(self.commands))),
        ]

    def line(self, password: str) -> str:
        """The user as one line of an ACL file."""
        return " ".join(["user", self.name, *self.rules(password)])


WEB = AclUser(
    "mfa-web",
    (*_SESSIONS, *_WEB_ONLY),
    keys=(f"{PREFIX}*", f"{RQ_PREFIX}job:*", f"{RQ_PREFIX}queue:*", f"{RQ_PREFIX}queues"),
    channels=(f"{PREFIX}*",),
)
WORKER = AclUser(
    "mfa-worker",
    (*_SESSIONS, *_WORKER_ONLY),
    keys=(f"{PREFIX}*", f"{RQ_PREFIX}*"),
    channels=(f"{PREFIX}*", f"{RQ_PREFIX}*"),
)
REPLICA = AclUser("mfa-replica", ("psync", "replconf", "ping"))
# Redis's Sentinel documentation, "Redis Sentinel and ACL": what Sentinel sends to masters and replicas.
SENTINEL = AclUser(
    "mfa-sentinel",
    (
        "multi",
        "exec",
        "slaveof",
        "replicaof",
        "ping",
        "info",
        "role",
        "subscribe",
        "publish",
        "config|rewrite",
        "client|setname",
        "client|kill",
        "script|kill",
    ),
    channels=("__sentinel__:hello",),
)
USERS = {"web": WEB, "worker": WORKER, "replica": REPLICA, "sentinel": SENTINEL}
PASSWORD_VARIABLES = {
    "web": "REDIS_WEB_PASSWORD",
    "worker": "REDIS_WORKER_PASSWORD",
    "replica": "REDIS_REPLICA_PASSWORD",
    "sentinel": "REDIS_SENTINEL_AUTH_PASSWORD",
}


def admin_rules(password: str | None) -> list[str]:
    """The `default` user: an administrator with a password, or off (no unauthenticated client at all)."""
    if not password:
        return ["reset", "off"]
    return ["reset", "on", f"#{hashlib.sha256(password.encode()).hexdigest()}", "~*", "&*", "+@all"]


def acl_file(passwords: Mapping[str, str], admin_password: str | None = None) -> str:
    """An ACL file with a line per role that has a password, and the `default` user."""
    lines = [" ".join(["user", "default", *admin_rules(admin_password)])]
    lines += [USERS[role].line(password) for role, password in passwords.items() if password]
    return "\n".join(lines) + "\n"


def install(redis: Redis, passwords: Mapping[str, str], admin_password: str | None = None) -> None:
    """Set the users on a running server (ACL SETUSER), `default` last: `redis` must authenticate as it."""
    for role, password in passwords.items():
        redis.execute_command("ACL", "SETUSER", USERS[role].name, *USERS[role].rules(password))  # type: ignore[no-untyped-call]
    redis.execute_command("ACL", "SETUSER", "default", *admin_rules(admin_password))  # type: ignore[no-untyped-call]


def main(argv: list[str] | None = None) -> int:
    """Write the ACL file for the passwords in the environment to the path given."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mfa.acl ACL_FILE", file=sys.stderr)
        return 2
    passwords = {role: os.environ.get(name, "") for role, name in PASSWORD_VARIABLES.items()}
    missing = [PASSWORD_VARIABLES[role] for role in ("web", "worker") if len(passwords[role]) < 16]
    if missing:
        print(f"mfa.acl: {', '.join(missing)} must be set, at least 16 characters", file=sys.stderr)
        return 2
    text = acl_file(passwords, os.environ.get("REDIS_ADMIN_PASSWORD") or None)
    with open(args[0], "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(args[0], 0o644)  # Redis runs as its own user; the file holds only password hashes
    print(f"mfa.acl: wrote {len(text.splitlines())} users to {args[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
