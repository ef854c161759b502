"""An asyncio loop on a thread of its own, for clients that hold hundreds of sockets while wrk runs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import resource
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def raise_open_files_limit(wanted: int = 65536) -> int:
    """Raise this process's soft limit on open files towards `wanted` (children inherit it); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


class LoopThread:
    """Runs coroutines on a loop in a daemon thread; `run` waits for one, `spawn` leaves it running."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # asyncio holds its tasks weakly: one nobody references can be collected mid-await.
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bench-clients", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the loop and wait for its result (TimeoutError after `timeout`)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Start `coro` on the loop without waiting for it (it is kept alive until it ends)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        self._running.add(future)
        future.add_done_callback(self._running.discard)

    def close(self) -> None:
        """Cancel whatever still runs, then stop the loop and its thread."""

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
