"""Secrets hygiene: after every flow, no MFA token, client secret, API key, Belvo password or bank
credential appears in any log line of the web and worker, nor in any Redis key or value (RQ's job
data included, decompressed), once each step has ended."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest
from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from devstack.processes import wait_for
from mfa.settings import Settings
from tests.stack import Stack, build_stack
from tests.support import (
    API_KEY,
    BELVO_SECRET_PASSWORD,
    CREDENTIALS_KEY,
    SECOND_API_KEY,
    inflated,
    redis_values,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """gunicorn with two processes and one `python -m worker`, as the Procfile runs them."""
    with build_stack(tmp_path_factory.mktemp("secrets"), web_workers=2, workers=1) as st:
        yield st


def _rq_jobs(client: Redis) -> list[Job]:
    """The RQ jobs in Redis now, their data unpickled by RQ itself."""
    jobs = []
    for key in client.scan_iter("rq:job:*"):
        job_id = key.decode().removeprefix("rq:job:")
        if ":" in job_id:  # rq:job:{id}:dependents and the like
            continue
        try:
            jobs.append(Job.fetch(job_id, connection=client))
        except NoSuchJobError:  # finished and deleted since the scan
            continue
    return jobs


def _rq_idle(client: Redis) -> bool:
    queue = Queue(Settings().resume_queue, connection=client)
    return (
        queue.count == 0
        and StartedJobRegistry(queue=queue).count == 0
        and ScheduledJobRegistry(queue=queue).count == 0
    )


def test_no_secret_reaches_a_log_line_or_redis(stack: Stack) -> None:
    """Drive every flow with distinctive secrets, then search the web and worker logs and all of Redis."""
    api, sandbox, redis = stack.api, stack.sandbox, stack.redis
    web, worker = stack.web, stack.workers[0]
    assert api is not None and web is not None
    bank_password = "numeric_code"  # the sandbox's MFA credentials: the password is fixed
    secrets: set[str] = {API_KEY, SECOND_API_KEY, BELVO_SECRET_PASSWORD, CREDENTIALS_KEY, bank_password}
    tokens = {"111111", "999999", "738291"}  # the sandbox decides by these; 738291 is rejected
    job_args: list[tuple] = []

    def start(**pause: object) -> dict:
        s = api.created(sandbox.pause(**pause))
        secrets.add(s["client_secret"])
        assert api.get(s["id"], credential=s["client_secret"]).status_code == 200
        return s

    def submit(s: dict, token: str | None, **kw: object) -> None:
        r = api.submit(s["id"], token, credential=s["client_secret"], **kw)
        assert r.status_code == 202, r.text
        # The job is enqueued with the status change, so it is in Redis now (unless already done):
        # its arguments are ids, and its pickled data holds no token.
        for job in _rq_jobs(redis):
            job_args.append(job.args)
            data = b"".join(inflated(redis.hvals(job.key)))
            assert not any(t.encode() in data for t in tokens), job.id

    s = start()  # success, with an Idempotency-Key and its replay
    key = {"Idempotency-Key": str(uuid.uuid4())}
    submit(s, "111111", headers=key)
    assert api.submit(s["id"], "111111", credential=s["client_secret"], headers=key).status_code == 202
    assert api.wait(s["id"])["status"] == "succeeded"

    s = start()  # chained MFA: another token for step 2
    submit(s, "999999")
    api.wait(s["id"], {"awaiting_token"}, step=2)
    submit(s, "111111")
    assert api.wait(s["id"])["status"] == "succeeded"

    s = start()  # a token Belvo rejects
    submit(s, "738291")
    assert api.wait(s["id"])["outcome"]["code"] == "invalid_token"

    s = start()
    assert api.cancel(s["id"], credential=s["client_secret"]).status_code == 200

    s = start(token_type="device")  # confirmed elsewhere: no token
    submit(s, None)
    assert api.wait(s["id"])["status"] == "succeeded"

    # A link registered by the service: the bank password travels sealed, then the MFA step as above.
    link = {"institution": "heimdall_mx_retail", "username": "mfa_numeric", "password": bank_password}
    r = api.request("POST", "/v1/links", json=link)
    assert r.status_code == 202, r.text
    s = r.json()
    secrets.add(s["client_secret"])
    api.wait(s["id"], {"awaiting_token"})
    submit(s, "111111")
    assert api.wait(s["id"])["status"] == "succeeded"

    for fault in ({"mode": "status", "status": 500}, {"mode": "hang", "delay_seconds": 3}):
        sandbox.fault(**fault)  # a 500, then a timeout: each retried once
        s = start()
        submit(s, "111111")
        assert api.wait(s["id"])["status"] == "succeeded"
        assert [c["fault"] is not None for c in sandbox.calls(method="PATCH")[-2:]] == [True, False]

    assert job_args and all(
        len(args) == 3 and str(args[0]).startswith("mfa_") and all(isinstance(n, int) for n in args[1:])
        for args in job_args
    ), job_args  # (session id, step, attempt): ids only
    # Every job has returned (so has its logging), and the web has logged a request made after all others.
    wait_for(lambda: _rq_idle(redis), 30, "the resume queue to drain")
    marker = uuid.uuid4().hex
    api.request("GET", "/healthz", credential=None, headers={"X-Request-ID": marker})
    wait_for(lambda: marker in web.log_text(), 10, "the web access log to catch up")

    lines = web.log_text().splitlines() + worker.log_text().splitlines()
    # The scan reads the service's own format: one JSON object per line, with the context fields that
    # carry ids (request, session, Belvo's request) on them, which are scanned like the messages.
    records = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r.get("belvo_request_id") and r.get("request_id") and r.get("session_id") for r in records)
    dump = redis_values(redis)
    token_pattern = re.compile(
        rb"(?<![0-9A-Za-z])(?:" + b"|".join(t.encode() for t in tokens) + rb")(?![0-9A-Za-z])"
    )
    for secret in secrets:
        assert not [line for line in lines if secret in line], f"a secret is logged: {secret[:6]}..."
        assert not [v for v in dump if secret.encode() in v], f"a secret is in Redis: {secret[:6]}..."
    assert not [line for line in lines if token_pattern.search(line.encode())], "an MFA token is logged"
    assert not [v for v in dump if token_pattern.search(v)], "an MFA token is in Redis"


def test_bank_credentials_never_reach_redis_or_logs(stack: Stack) -> None:
    api, redis = stack.api, stack.redis
    assert api is not None and stack.web is not None
    username, password = "mfa_numeric", "numeric_code"
    body = {"institution": "heimdall_mx_retail", "username": username, "password": password}
    r = api.request("POST", "/v1/links", json=body)
    assert r.status_code == 202, r.text
    s = r.json()
    seen_during = b"\n".join(redis_values(redis)).decode(errors="replace")
    api.wait(s["id"], {"awaiting_token"})
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    api.wait(s["id"])
    for blob in (
        seen_during,
        b"\n".join(redis_values(redis)).decode(errors="replace"),
        stack.web.log_text(),
        stack.workers[0].log_text(),
    ):
        assert username not in blob and password not in blob
