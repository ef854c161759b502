"""Acknowledged writes: a submission is answered only once enough replicas hold it (REDIS_WAIT_REPLICAS).

Redis replicates asynchronously: a primary that dies can take its last writes with it, and Sentinel then
promotes a replica that never saw them. WAIT blocks until that many replicas have acknowledged every
write the *same connection* made, so the acknowledgement runs a one-key write and WAIT in one pipeline on
one connection: the replication stream is ordered, so once a replica acknowledges that write it holds
every write committed before it, the caller's transaction included. Fewer acknowledgements than asked
within the timeout is WriteNotAcknowledged (answered 503): the write may or may not survive a failover.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from mfa.errors import WriteNotAcknowledged
from mfa.keys import ACK_KEY


@dataclass(frozen=True)
class ReplicaAck:
    """How many replicas must acknowledge a write, and how long to wait for them."""

    replicas: int
    timeout_ms: int

    def confirm(self, redis: Redis) -> int:
        """Wait until `replicas` replicas hold every write committed so far; WriteNotAcknowledged if not."""
        with redis.pipeline(transaction=False) as pipe:
            pipe.set(ACK_KEY, "1")
            pipe.wait(self.replicas, self.timeout_ms)
            acknowledged = int(pipe.execute()[1])
        if acknowledged < self.replicas:
            raise WriteNotAcknowledged(acknowledged, self.replicas)
        return acknowledged
