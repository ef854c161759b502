"""The RQ worker of the resume queue: RQ's in-process worker, running many jobs at once.

RQ's `SimpleWorker` runs one job at a time in its own process. `ResumeWorker` keeps RQ's work loop,
its reliable dequeue (one queue on Redis >= 6.2: BLMOVE into the queue's intermediate list, so a
popped job is never only in a worker's memory), its per-job bookkeeping (`prepare_execution`,
`perform_job`, registries, the failure callback) and its worker registration, and changes these:

- a job is dequeued only once one of the process's call slots is free (worker/slots.py), and then runs
  in a pooled thread, so up to WORKER_CONCURRENCY upstream calls are in flight at once;
- the job timeout is a `ThreadDeadline` (one watchdog thread for every job) instead of SIGALRM, which
  only the main thread can receive;
- a stop request never interrupts the dequeue: the dequeue blocks in rounds of a second and the loop
  looks at the request between rounds. SIGTERM or SIGINT therefore takes no new job, lets every call
  in flight finish and be recorded, and the worker then exits 0. A second signal exits at once; the
  calls then in flight are left to their leases, like a killed worker's;
- the loop that dequeues, which every job waits on, makes only the Redis round trips it must (the
  BLMOVE and the job's HGETALL): RQ's worker heartbeat, state and suspension check are sent when due
  rather than around every job, and the execution record is made in the job's own thread.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from types import FrameType
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.utils import now
from rq.worker import WorkerStatus

from worker.deadlines import ThreadDeadline
from worker.slots import CallSlots
from worker.stranded import requeue_stranded

DEQUEUE_ROUND_SECONDS = 1  # how long one blocking BLMOVE waits: the delay before a stop request is seen
SLOT_POLL_SECONDS = 0.2  # how often a worker with every slot taken looks for a stop request
HEARTBEAT_SECONDS = 10.0  # RQ's worker heartbeat while no round of the dequeue sends it


class ResumeWorker(SimpleWorker):
    """RQ's in-process worker with `slots.size` jobs in flight at once, each in a thread of `slots`."""

    death_penalty_class = ThreadDeadline
    log_result_lifespan = False  # "result discarded" for every job: results are never kept (result_ttl=0)
    # Sessions wait on the far side of an outage with their Belvo clock running: a minute of RQ's
    # backoff could let them expire, and a PING every 2 s costs Redis nothing.
    max_connection_wait_time = 2.0

    def __init__(self, queues: Sequence[Queue], *, slots: CallSlots, **kwargs: Any) -> None:
        super().__init__(queues, **kwargs)
        self.slots = slots
        self._stopping = threading.Event()
        self._burst = False
        self._suspension_checked_at = float("-inf")
        # Jobs whose run Redis cut off, and whether to look for jobs stranded between RQ's two dequeue
        # steps: both go back on the queue at start and once Redis answers again (worker/stranded.py).
        self._cut_off: list[str] = []
        self._cut_off_lock = threading.Lock()
        self._look_for_stranded = True

    @property
    def stop_requested(self) -> bool:
        """Whether a warm shutdown was asked for."""
        return self._stopping.is_set()

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: take no new job; the calls in flight finish and are recorded first."""
        self._shutdown_requested_date = now()
        self._stop_requested = True
        self._stopping.set()
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        self.log.info(
            "Worker %s: warm shutdown requested; %d call(s) in flight finish first (signal again: quit)",
            self.name,
            self.slots.in_flight,
        )

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """A second SIGTERM/SIGINT: exit now; the calls in flight are closed by their lapsing leases."""
        if self._shutdown_requested_date and now() - self._shutdown_requested_date < timedelta(seconds=1):
            return  # the same stop, delivered twice (RQ's worker pool and the terminal both signal)
        self.log.warning(
            "Worker %s: cold shutdown with %d call(s) in flight; any worker's sweeper records them",
            self.name,
            self.slots.in_flight,
        )
        os._exit(1)

    def request_stop_execution(self, execution_id: str) -> None:
        """RQ's stop-job command: a call in flight cannot be taken back, so it is left to end by itself."""
        self.log.warning(
            "Worker %s: cannot stop execution %s: its call is in flight", self.name, execution_id
        )

    def set_state(self, state: str, pipeline: Any = None) -> None:
        """RQ's worker state, except that a worker with calls in flight reads busy, not idle; written
        only when it changes (RQ writes it before every dequeue)."""
        if state == WorkerStatus.IDLE and self.slots.in_flight:
            state = WorkerStatus.BUSY
        if pipeline is None and state == self.get_state():
            return
        super().set_state(state, pipeline)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's worker heartbeat, sent from the work loop at most every HEARTBEAT_SECONDS. RQ sends
        one around every job: at many jobs a second that is most of the loop's Redis traffic, for a
        registration that lives worker_ttl + 60 s (8 minutes) between heartbeats."""
        due = self.last_heartbeat is None or now() - self.last_heartbeat >= timedelta(
            seconds=HEARTBEAT_SECONDS
        )
        if timeout is not None or pipeline is not None or due:
            super().heartbeat(timeout, pipeline)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """Wait for a free slot, then dequeue (RQ's `Queue.dequeue_any`) in short blocking rounds;
        None once a stop is requested or, in burst mode (`timeout` None), once the queue is empty."""
        self._burst = timeout is None  # RQ's loop asks without a timeout in burst mode
        if not self._take_slot():
            return None
        try:
            result = self._dequeue(blocking=timeout is not None)
        except BaseException:
            self.slots.give_back()
            raise
        if result is None:
            self.slots.give_back()
        return result

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Start the job in the slot taken for it and return at once (RQ's loop then dequeues the next).

        RQ's bookkeeping before the job (its execution record) runs in the job's thread too: the loop
        that dequeues is what every other job waits on, so it makes no Redis round trip it can spare.
        """
        try:
            self.slots.start(self._perform, job, queue)
        except BaseException:
            self.slots.give_back()
            raise

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's `rq suspend` check, made at most once a second rather than before every job."""
        if time.monotonic() - self._suspension_checked_at >= 1:
            super().check_for_suspension(burst)
            self._suspension_checked_at = time.monotonic()

    def teardown(self) -> None:
        """On a stop or at the end of a burst, every call in flight ends before the worker unregisters."""
        if self.stop_requested or self._burst:
            self.slots.drain(HEARTBEAT_SECONDS, self._heartbeat_quietly)
        super().teardown()  # type: ignore[no-untyped-call]

    def _perform(self, job: Job, queue: Queue) -> None:
        try:
            self.perform_job(job, queue, self.prepare_execution(job))
        except Exception:
            # perform_job records a job's own failure itself; it raises only when RQ's bookkeeping
            # could not reach Redis. The session is still covered: its answer was recorded, or its
            # lease lapses and a sweeper closes it, or (no call made) the job runs again: it goes back
            # on the queue once Redis answers, and the step's claim lets only one run call Belvo.
            self.log.exception("Worker %s: RQ could not record the end of job %s", self.name, job.id)
            with self._cut_off_lock:
                self._cut_off.append(job.id)

    def _put_back_stranded(self) -> None:
        """Put back on the queue the jobs Redis cut off here and those stranded between RQ's two steps."""
        with self._cut_off_lock:
            cut_off, self._cut_off = self._cut_off, []
        try:
            for queue in self.queues:
                moved = requeue_stranded(queue, cut_off)
                if moved:
                    self.log.warning(
                        "Worker %s: put back %d job(s) whose run never finished: %s",
                        self.name,
                        len(moved),
                        moved,
                    )
        except BaseException:
            with self._cut_off_lock:
                self._cut_off[:0] = cut_off
            raise
        self._look_for_stranded = False

    def _take_slot(self) -> bool:
        beat_at = time.monotonic()
        while not self.slots.take(SLOT_POLL_SECONDS):
            if self.stop_requested:
                return False
            if time.monotonic() - beat_at >= HEARTBEAT_SECONDS:
                self._heartbeat_quietly()
                beat_at = time.monotonic()
        if self.stop_requested:
            self.slots.give_back()
            return False
        return True

    def _dequeue(self, blocking: bool) -> tuple[Job, Queue] | None:
        wait = 0.5
        while not self.stop_requested:
            try:
                self.set_state(WorkerStatus.IDLE)
                self.heartbeat()  # at most every HEARTBEAT_SECONDS (see heartbeat)
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()  # type: ignore[no-untyped-call]
                if self._look_for_stranded or self._cut_off:
                    self._put_back_stranded()
                result = self.queue_class.dequeue_any(
                    self._ordered_queues,
                    DEQUEUE_ROUND_SECONDS if blocking else None,
                    connection=self.connection,
                    job_class=self.job_class,
                    serializer=self.serializer,
                    death_penalty_class=self.death_penalty_class,
                )
            except DequeueTimeout:
                continue
            except (RedisConnectionError, RedisTimeoutError) as exc:
                self._look_for_stranded = True  # once it answers again: a failover may strand a job
                self.log.error(
                    "Worker %s: could not connect to Redis (%s); retrying in %.1fs", self.name, exc, wait
                )
                self._stopping.wait(wait)
                wait = min(wait * 2, self.max_connection_wait_time)
                continue
            if result is not None:
                job, queue = result
                self.log.info("Worker %s: %s: %s (%s)", self.name, queue.name, job.description, job.id)
            return result
        return None

    def _heartbeat_quietly(self) -> None:
        try:
            self.heartbeat(self.worker_ttl + 60)
        except RedisError:
            pass  # the next one may land; RQ's registration outlives several missed beats
