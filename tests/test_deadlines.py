"""ThreadDeadline: job timeouts in any thread, watched by one watchdog thread for the whole process."""

from __future__ import annotations

import threading
import time

import pytest
from rq.timeouts import JobTimeoutException

from worker.deadlines import WATCHDOG, ThreadDeadline


def busy_until(done: threading.Event, seconds: float) -> None:
    """Run Python code (where a pending asynchronous exception lands) until `done` or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while not done.is_set() and time.monotonic() < deadline:
        time.sleep(0.005)


def test_a_deadline_interrupts_only_the_thread_that_ran_past_it():
    late_ended = threading.Event()
    outcomes: dict[str, str] = {}

    def run(name: str, timeout: float | None, until: threading.Event, seconds: float) -> None:
        try:
            if timeout is None:
                busy_until(until, seconds)
            else:
                with ThreadDeadline(timeout, JobTimeoutException, job_id=name):
                    busy_until(until, seconds)
            outcomes[name] = "finished"
        except JobTimeoutException:
            outcomes[name] = "timed out"
        finally:
            if name == "late":
                late_ended.set()

    threads = [
        threading.Thread(target=run, args=("late", 0.2, threading.Event(), 10)),
        threading.Thread(target=run, args=("in time", 30, late_ended, 10)),
        threading.Thread(target=run, args=("no deadline", None, late_ended, 10)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert outcomes == {"late": "timed out", "in time": "finished", "no deadline": "finished"}
    assert WATCHDOG.armed == 0


def test_a_deadline_disarmed_in_time_never_fires_later():
    for _ in range(50):
        with ThreadDeadline(0.05, JobTimeoutException):
            pass
    assert WATCHDOG.armed == 0
    busy_until(threading.Event(), 0.3)  # past every deadline: nothing may land here


@pytest.mark.parametrize("timeout", [0, -1])
def test_no_timeout_arms_nothing(timeout):
    with ThreadDeadline(timeout, JobTimeoutException):
        assert WATCHDOG.armed == 0
