"""worker/stranded.py: a job taken off the queue but never started (Redis failed in between) is put back."""

from __future__ import annotations

from rq import Queue

from devstack.processes import Proc
from mfa.connections import Role, connect
from mfa.settings import Settings
from tests.support import SERVICE_ENV
from worker.stranded import requeue_stranded

QUEUE = SERVICE_ENV.get("RESUME_QUEUE", "belvo-resume")


def _worker_queue(redis_server: Proc) -> Queue:
    settings = Settings.from_env({"REDIS_URL": redis_server.extra["urls"]["worker"]})
    return Queue(QUEUE, connection=connect(settings, Role.WORKER))  # as the worker connects


def test_a_job_taken_but_never_started_goes_back_and_runs(api, sandbox, redis_server: Proc) -> None:
    s = api.created(sandbox.pause())
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    queue = _worker_queue(redis_server)
    # RQ's first step of a dequeue, and then nothing: Redis failed before the job was started.
    job_id = queue.connection.lmove(queue.key, queue.intermediate_queue.key).decode()
    assert queue.count == 0 and queue.intermediate_queue.get_job_ids() == [job_id]
    assert requeue_stranded(queue) == [job_id]
    assert queue.job_ids == [job_id] and queue.intermediate_queue.get_job_ids() == []
    assert api.wait(s["id"])["status"] == "succeeded"


def test_a_job_a_worker_has_started_stays_where_it_is(api, sandbox, redis_server: Proc) -> None:
    s = api.created(sandbox.pause())
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    queue = _worker_queue(redis_server)
    job_id = queue.connection.lmove(queue.key, queue.intermediate_queue.key).decode()
    # As a live worker records the job it runs: {job id}:{execution id}, scored by its deadline.
    queue.connection.zadd(queue.started_job_registry.key, {f"{job_id}:execution-1": 10**10})
    assert requeue_stranded(queue) == []
    assert queue.count == 0


def test_the_job_a_redis_failure_cut_off_goes_back_and_runs(api, sandbox, redis_server: Proc) -> None:
    s = api.created(sandbox.pause())
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    queue = _worker_queue(redis_server)
    job_id = queue.connection.lmove(queue.key, queue.intermediate_queue.key).decode()
    # RQ started it (intermediate list -> started registry), then Redis failed under the run.
    queue.connection.lrem(queue.intermediate_queue.key, 1, job_id)
    queue.connection.zadd(queue.started_job_registry.key, {f"{job_id}:execution-1": 10**10})
    assert requeue_stranded(queue) == [], "another worker's run is left alone"
    assert requeue_stranded(queue, cut_off=[job_id]) == [job_id]
    assert queue.job_ids == [job_id] and queue.started_job_registry.get_job_ids(cleanup=False) == []
    assert api.wait(s["id"])["status"] == "succeeded"
