"""Is this worker alive? Its heartbeat, and the check a container runs: `python -m worker --check`.

After every sweep that reached Redis, the worker touches its heartbeat file (WORKER_HEARTBEAT_FILE) and
stamps its name in mfa:workers (what the metrics count as live workers). The file is this process's:
the worker holds an exclusive lock on it while it runs, so a check can tell a live worker from a file
left behind by a dead one at once, without waiting for the file to age.

`--check` exits 0 when the file is locked by a running worker and was touched within --max-age seconds
(default 30): the process is up, its loops turn and it reaches Redis. It reads only the file, so it
costs no Redis round trip and works with Redis down (where it then fails, which is the truth).
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from mfa.errors import ConfigError
from mfa.keys import WORKERS_ZSET
from mfa.settings import Settings

if TYPE_CHECKING:  # the check runs often and must start fast: it imports no Redis client
    from redis import Redis

log = logging.getLogger(__name__)
FORGET_AFTER_MS = 24 * 3600 * 1000  # names of workers gone this long leave mfa:workers
DEFAULT_MAX_AGE_SECONDS = 30.0


class Heartbeat:
    """This worker's heartbeat: a locked file it touches, and its name's score in mfa:workers."""

    def __init__(self, path: str, name: str) -> None:
        self.path, self.name = Path(path), name
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        """Lock the file as this process's; False (and a warning) if another live worker holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # held open, and locked, for the process's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            log.warning(
                "heartbeat file %s is held by another worker; this one has no --check of its own "
                "(give each worker its own WORKER_HEARTBEAT_FILE)",
                self.path,
            )
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def beat(self, redis: Redis, now_ms: int) -> None:
        """A sweep reached Redis: say so in Redis and on disk."""
        with redis.pipeline(transaction=False) as pipe:
            pipe.zadd(WORKERS_ZSET, {self.name: now_ms})
            pipe.zremrangebyscore(WORKERS_ZSET, "-inf", now_ms - FORGET_AFTER_MS)
            pipe.execute()
        if self._file is not None:
            try:
                os.utime(self._file.fileno())
            except OSError as exc:  # a full or read-only disk must not stop the sweeper
                log.warning("could not touch the heartbeat file %s (%s)", self.path, type(exc).__name__)

    def release(self, redis: Redis) -> None:
        """Stopping: leave the live workers' count at once rather than when the heartbeat ages."""
        from redis.exceptions import RedisError

        try:
            redis.zrem(WORKERS_ZSET, self.name)
        except RedisError:
            pass  # it ages out of the count within seconds anyway
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None


def check(path: str, max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS) -> tuple[bool, str]:
    """(healthy, why): a running worker holds the file's lock and touched it within `max_age_seconds`."""
    file = Path(path)
    try:
        with open(file) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # held: a worker runs
            else:
                return False, f"no running worker holds {file}"
            age = time.time() - os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        return False, f"no heartbeat file {file}"
    if age > max_age_seconds:
        return False, f"last heartbeat {age:.1f}s ago (more than {max_age_seconds:g}s)"
    return True, f"last heartbeat {age:.1f}s ago"


def main(argv: list[str]) -> int:
    """`python -m worker --check [--max-age SECONDS]`: 0 healthy, 1 not, 2 a configuration error."""
    parser = argparse.ArgumentParser(prog="python -m worker --check")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE_SECONDS)
    args, _ = parser.parse_known_args(argv)
    try:
        path = Settings.from_env().worker_heartbeat_file
    except ConfigError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr)
        return 2
    healthy, why = check(path, args.max_age)
    print(f"worker {'healthy' if healthy else 'unhealthy'}: {why}")
    return 0 if healthy else 1
