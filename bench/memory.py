"""Redis memory per waiting session, on a redis-server of its own holding nothing else.

Each session is what POST /v1/sessions stores: its hash, its Belvo-session index key, its entry in
the expiry zset, and the TTLs on both keys (Redis keeps those in a second dict: "scheduled expiry").
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from bench.seed import seed_sessions
from bench.stack import Stack

# Redis packs a small hash (a listpack; "ziplist" before 7.0) only while every value is at most this
# many bytes; the stored challenge JSON is longer, so each session hash becomes a full hash table.
PACKED_VALUE_BYTES = 256


@dataclass
class MemoryResult:
    """Bytes of used_memory per session at each total, and the hash encoding Redis chose."""

    per_session_bytes: dict[int, float]
    encoding: str
    variant: str


def _used(redis: Redis) -> int:
    return int(redis.info("memory")["used_memory"])


def measure_memory(stack: Stack, counts: tuple[int, ...], *, packed: bool = False) -> MemoryResult:
    """Flush a dedicated Redis, then add sessions up to each of `counts`, dividing the growth each time."""
    name = "redis-memory-packed" if packed else "redis-memory"
    proc = stack.redis(name)
    redis = Redis.from_url(proc.url)
    try:
        if packed:
            # An ops-side what-if only: the same data with a larger packing threshold.
            key = "hash-max-listpack-value" if _version(redis) >= (7,) else "hash-max-ziplist-value"
            redis.config_set(key, PACKED_VALUE_BYTES)
        redis.flushall()
        before = _used(redis)
        made: list[str] = []
        result: dict[int, float] = {}
        for count in counts:
            made += seed_sessions(redis, count - len(made))
            result[count] = (_used(redis) - before) / count
        encoding = redis.object("encoding", f"mfa:session:{made[0]}")
        return MemoryResult(result, encoding.decode() if isinstance(encoding, bytes) else str(encoding), name)
    finally:
        redis.close()
        stack.stop(proc)


def _version(redis: Redis) -> tuple[int, ...]:
    return tuple(int(part) for part in str(redis.info("server")["redis_version"]).split(".")[:2])
