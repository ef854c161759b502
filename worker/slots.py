"""The worker process's call slots: up to WORKER_CONCURRENCY jobs running at once, a pooled thread each.

A job is one upstream call and two Redis scripts: it spends nearly all its time waiting on Belvo, so a
thread is all it needs, at a fraction of a process's memory. A slot is taken *before* a job is dequeued
and given back when the job has ended, so a worker never holds a job it has no thread for: the jobs it
cannot start yet stay in RQ's queue, where any other worker can take them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any


class CallSlots:
    """A fixed number of slots, and the threads that run the jobs holding them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = threading.BoundedSemaphore(size)
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="call")
        self._running: set[Future[Any]] = set()
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Jobs running now."""
        with self._lock:
            return len(self._running)

    def take(self, timeout: float) -> bool:
        """Take a free slot, waiting up to `timeout` seconds; False if none came free."""
        return self._free.acquire(timeout=timeout)

    def give_back(self) -> None:
        """Return a slot taken for a job that was not started after all."""
        self._free.release()

    def start(self, job: Callable[..., object], *args: object) -> None:
        """Run `job(*args)` in a pooled thread, in the slot taken for it; the slot is freed when it ends."""
        future = self._pool.submit(job, *args)
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._ended)

    def _ended(self, future: Future[Any]) -> None:
        with self._lock:
            self._running.discard(future)
        self._free.release()

    def drain(self, every: float = 5.0, tick: Callable[[], None] = lambda: None) -> None:
        """Wait until every running job has ended, calling `tick` every `every` seconds meanwhile."""
        while True:
            with self._lock:
                running = set(self._running)
            if not running:
                return
            started = time.monotonic()
            wait(running, timeout=every)
            if time.monotonic() - started >= every:
                tick()

    def close(self) -> None:
        """Drain, then stop the pool's threads."""
        self.drain()
        self._pool.shutdown(wait=True)
