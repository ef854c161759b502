"""Job timeouts for jobs that run in threads: one watchdog thread keeps every running job's deadline.

RQ's default death penalty is SIGALRM, which only the main thread receives; its thread-safe one
(`rq.timeouts.TimerDeathPenalty`) starts a timer thread per job. `ThreadDeadline` is the same penalty
with one watchdog for all: when a deadline passes, the watchdog raises the job's timeout exception in
that job's thread (PyThreadState_SetAsyncExc, as TimerDeathPenalty does). The exception arrives when
the thread next runs Python code, so a thread blocked in a socket read gets it once the read returns:
every upstream call has its own connect and read timeouts, and the call lease bounds the rest
(mfa/leases.py).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rq.timeouts import BaseDeathPenalty

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Deadline:
    """One armed deadline: raise `exception` in thread `thread_id` at `at` (time.monotonic())."""

    at: float
    thread_id: int
    exception: type[BaseException]
    job_id: str | None
    fired: bool = field(default=False)


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> int:
    """Set (or, with None, clear) the exception pending in another thread; the threads it reached."""
    target = ctypes.py_object(exception) if exception is not None else None
    return int(ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target))


class Watchdog:
    """Every armed deadline of the process, watched by one thread (started on first use)."""

    def __init__(self) -> None:
        self._armed: set[Deadline] = set()
        self._cond = threading.Condition()
        self._next: float | None = None  # the deadline the thread sleeps towards
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, exception: type[BaseException], job_id: str | None = None) -> Deadline:
        """Raise `exception` in the calling thread once `seconds` have passed, unless disarmed first."""
        deadline = Deadline(time.monotonic() + seconds, threading.get_ident(), exception, job_id)
        with self._cond:
            self._armed.add(deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="job-deadlines", daemon=True)
                self._thread.start()
            if self._next is None or deadline.at < self._next:
                self._cond.notify()
        return deadline

    def disarm(self, deadline: Deadline) -> None:
        """Forget `deadline`; if it fired while its block was ending, drop the exception still pending."""
        with self._cond:
            self._armed.discard(deadline)
            if deadline.fired:
                _raise_in(deadline.thread_id, None)

    @property
    def armed(self) -> int:
        """How many deadlines are armed now."""
        with self._cond:
            return len(self._armed)

    def _watch(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for deadline in [d for d in self._armed if d.at <= now]:
                    self._armed.discard(deadline)
                    deadline.fired = True
                    log.warning("job %s ran past its timeout; interrupting it", deadline.job_id)
                    _raise_in(deadline.thread_id, deadline.exception)
                self._next = min((d.at for d in self._armed), default=None)
                self._cond.wait(None if self._next is None else self._next - now)


WATCHDOG = Watchdog()


class ThreadDeadline(BaseDeathPenalty):
    """RQ's death penalty for a job or callback in any thread, watched by the process's one Watchdog."""

    def __init__(self, timeout: float, exception: type[BaseException] = Exception, **kwargs: Any) -> None:
        super().__init__(timeout, exception, **kwargs)  # type: ignore[no-untyped-call]
        self._job_id = kwargs.get("job_id")
        self._deadline: Deadline | None = None

    def setup_death_penalty(self) -> None:
        """Arm the deadline (a timeout of 0 or -1 means none)."""
        if self._timeout > 0:
            self._deadline = WATCHDOG.arm(self._timeout, self._exception, self._job_id)

    def cancel_death_penalty(self) -> None:
        """Disarm it: the block ended first."""
        if self._deadline is not None:
            WATCHDOG.disarm(self._deadline)
            self._deadline = None
