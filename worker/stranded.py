"""Jobs taken off the queue whose work never started, because Redis failed between the two steps.

RQ's reliable dequeue moves a job id from the queue into the queue's intermediate list, then, in a
second step, into the started registry. If Redis fails in between (a crash, or a failover to a replica
that had the first step and not the second), the id waits in the intermediate list until RQ's
maintenance fails the job minutes later, and its session waits in `submitted`. So each worker, when it
(re)connects, puts such ids back on the queue at once. A job another worker has just taken and not yet
started may be put back too: it then runs twice, and the step's claim (begin_call) lets only one of the
two call Belvo.
"""

from __future__ import annotations

from rq import Queue


def requeue_stranded(queue: Queue) -> list[str]:
    """Put back at the head of `queue` every job in its intermediate list that no worker has started."""
    intermediate, started = queue.intermediate_queue, queue.started_job_registry
    moved = []
    for job_id in intermediate.get_job_ids():
        if job_id in started:
            continue
        with queue.connection.pipeline() as pipe:  # MULTI: the id is in exactly one of the two lists
            pipe.lrem(intermediate.key, 1, job_id)
            queue.push_job_id(job_id, pipeline=pipe, at_front=True)
            pipe.execute()
        moved.append(job_id)
    return moved
