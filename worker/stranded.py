"""Jobs whose run never finished because Redis failed under them; put back on the queue when a worker
(re)connects.

RQ's reliable dequeue moves a job id from the queue into the queue's intermediate list, then, in a
second step, into the started registry, and the job runs. If Redis fails between the steps (a crash, or
a failover to a replica that had the first step and not the second), the id waits in the intermediate
list; if it fails while the job runs, the job stays in the started registry. Either way RQ's maintenance
fails the job only minutes later, and its session waits in `submitted`. So each worker, when it
(re)connects, puts back at the head of the queue every id in the intermediate list that no worker has
started, and the job that a Redis failure cut off in this very process. A job run twice this way is
safe: the step's claim (begin_call) lets only one run call Belvo, and a claim whose call was in flight
when its run died ends `upstream_outcome_unknown` through its lease, as after any crash.
"""

from __future__ import annotations

from collections.abc import Iterable

from rq import Queue


def requeue_stranded(queue: Queue, cut_off: Iterable[str] = ()) -> list[str]:
    """Put back at the head of `queue` the intermediate list's unstarted jobs and the jobs in `cut_off`."""
    intermediate, started = queue.intermediate_queue, queue.started_job_registry
    runs = started.get_job_and_execution_ids(cleanup=False)
    running = {job_id for job_id, _ in runs}
    moved = []
    for job_id in intermediate.get_job_ids():
        if job_id in running:
            continue
        with queue.connection.pipeline() as pipe:  # MULTI: the id is in exactly one of the two lists
            pipe.lrem(intermediate.key, 1, job_id)
            queue.push_job_id(job_id, pipeline=pipe, at_front=True)
            pipe.execute()
        moved.append(job_id)
    for job_id in cut_off:
        if job_id in moved or queue.fetch_job(job_id) is None:
            continue  # already put back, or gone (it finished and was deleted after all)
        with queue.connection.pipeline() as pipe:
            # Its run is over; RQ's cleanup must not later fail the job (and so abort the step) for it.
            for execution in [f"{j}:{e}" for j, e in runs if j == job_id]:
                pipe.zrem(started.key, execution)
            pipe.lrem(intermediate.key, 0, job_id)
            queue.push_job_id(job_id, pipeline=pipe, at_front=True)
            pipe.execute()
        moved.append(job_id)
    return moved
