"""Secrets hygiene: after every flow, no MFA token, client secret, API key, Belvo password, bank
credential, webhook signing secret or bank data of Belvo's results appears in any log line of the web
and worker, in any Redis key or value (RQ's job data included, decompressed), or anywhere in Redis's
append-only file, which keeps every write, deleted keys included; no secret or token is in any webhook
sent. And neither process holds a key that opens what the other sealed: the web cannot open a token or
credentials, the worker cannot open a stored result."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from devstack.processes import children, wait_for
from mfa.keys import creds_key, result_key, token_key
from mfa.sealing import MalformedKey, Opener, Unsealable
from mfa.settings import Settings
from tests.receiver import Receiver, receiving
from tests.stack import Stack, build_stack
from tests.support import (
    API_KEY,
    BELVO_SECRET_PASSWORD,
    BELVO_WEBHOOK_AUTHORIZATION,
    RESULT_PRIVATE_KEY,
    SEALING_PRIVATE_KEY,
    SECOND_API_KEY,
    WEBHOOK_LOOPBACK_ENV,
    WEBHOOK_SECRET,
    inflated,
    redis_values,
)

OWNER_EMAIL = "valeria.gomez@example.com"  # the sandbox's owners result: a person's bank data
OWNER_NAME = "Valeria Gómez Ruiz"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Stack]:
    """gunicorn with two processes and one `python -m worker`, as the Procfile runs them; webhooks on."""
    env = {**WEBHOOK_LOOPBACK_ENV, "WEBHOOK_URL": f"{receiver.url}/hook"}
    with build_stack(tmp_path_factory.mktemp("secrets"), env, web_workers=2, workers=1) as st:
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


def _aof(stack: Stack) -> bytes:
    """Every byte of Redis's persistence files: the AOF (one file, or Redis 7's directory of parts)."""
    files = sorted(p for p in (stack.root / "redis").rglob("*") if p.is_file())
    assert any("appendonly" in p.name for p in files), files
    return b"\n".join(p.read_bytes() for p in files)


def _environ(pid: int) -> dict[str, str]:
    """A process's environment as the kernel holds it."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def _rq_idle(client: Redis) -> bool:
    queue = Queue(Settings().resume_queue, connection=client)
    return (
        queue.count == 0
        and StartedJobRegistry(queue=queue).count == 0
        and ScheduledJobRegistry(queue=queue).count == 0
    )


def test_no_secret_reaches_a_log_line_or_redis(stack: Stack, receiver: Receiver) -> None:
    """Drive every flow with distinctive secrets, then search the web and worker logs, all of Redis and
    every webhook sent."""
    api, sandbox, redis = stack.api, stack.sandbox, stack.redis
    web, worker = stack.web, stack.workers[0]
    assert api is not None and web is not None
    bank_password = "numeric_code"  # the sandbox's MFA credentials: the password is fixed
    secrets: set[str] = {
        API_KEY,
        SECOND_API_KEY,
        BELVO_SECRET_PASSWORD,
        BELVO_WEBHOOK_AUTHORIZATION,
        SEALING_PRIVATE_KEY,
        RESULT_PRIVATE_KEY,
        bank_password,
        WEBHOOK_SECRET,
        WEBHOOK_SECRET.removeprefix("whsec_"),
    }
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

    s = start(token_type="approval")  # confirmed elsewhere: no token
    submit(s, None)
    assert api.wait(s["id"])["status"] == "succeeded"

    owners = api.created(sandbox.pause(resource="owners"), resource="owners")  # bank data in the result
    secrets.add(owners["client_secret"])
    submit(owners, "111111")
    done = api.wait(owners["id"])
    assert done["outcome"]["result"][0]["email"] == OWNER_EMAIL  # the API key reads it; Redis holds it sealed

    # A link registered by the service: the bank password travels sealed, then the MFA step as above.
    link = {"institution": "heimdall_mx_retail", "username": "mfa_numeric", "password": bank_password}
    r = api.request("POST", "/v1/links", json=link)
    assert r.status_code == 202, r.text
    s = r.json()
    secrets.add(s["client_secret"])
    api.wait(s["id"], {"awaiting_token"})
    submit(s, "111111")
    done = api.wait(s["id"])
    assert done["status"] == "succeeded"

    # Belvo's webhook says the link needs its user again; the backend sends the password again.
    sent = sandbox.webhook(
        f"{stack.web.url}/v1/belvo/webhooks", done["link"], authorization=BELVO_WEBHOOK_AUTHORIZATION
    )
    assert sent["status"] == 200, sent
    r = api.request("POST", f"/v1/links/{done['link']}/update", json={"password": bank_password})
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
    dump = [*redis_values(redis), _aof(stack)]
    secrets |= {OWNER_EMAIL, OWNER_NAME}
    token_pattern = re.compile(
        rb"(?<![0-9A-Za-z])(?:" + b"|".join(t.encode() for t in tokens) + rb")(?![0-9A-Za-z])"
    )
    for secret in secrets:
        assert not [line for line in lines if secret in line], f"a secret is logged: {secret[:6]}..."
        assert not [v for v in dump if secret.encode() in v], f"a secret is in Redis: {secret[:6]}..."
    assert not [line for line in lines if token_pattern.search(line.encode())], "an MFA token is logged"
    assert not [v for v in dump if token_pattern.search(v)], "an MFA token is in Redis or its AOF"
    sent = [r.body + repr(r.headers).encode() for r in receiver.on("/hook")]
    assert len(sent) >= 10, "every flow above made webhook events"
    for secret in secrets:
        assert not [b for b in sent if secret.encode() in b], f"a secret is in a webhook: {secret[:6]}..."
    assert not [b for b in sent if token_pattern.search(b)], "an MFA token is in a webhook"


def test_neither_process_holds_a_key_that_opens_the_others_sealed_data(stack: Stack) -> None:
    """Read each process's environment from the kernel; try every value in it as a private key on
    sealed values taken from Redis: the web's open no token or credentials, the worker's no result."""
    api, sandbox, redis = stack.api, stack.sandbox, stack.redis
    assert api is not None and stack.web is not None
    sandbox.fault("delay", delay_seconds=0.5)  # the step stays open while its token is read
    s = api.created(sandbox.pause())
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    sealed_token = redis.get(token_key(s["id"]))
    link = {"institution": "heimdall_mx_retail", "username": "mfa_numeric", "password": "numeric_code"}
    r = api.request("POST", "/v1/links", json=link)
    sealed_creds = redis.get(creds_key(r.json()["id"]))
    assert api.wait(s["id"])["status"] == "succeeded"
    sealed_result = redis.get(result_key(s["id"]))
    assert sealed_token and sealed_creds and sealed_result

    def opens(environ: dict[str, str], sealed: bytes) -> list[str]:
        found = []
        for name, value in environ.items():
            try:
                opener = Opener.from_text(value)
            except (MalformedKey, ValueError):
                continue
            try:
                opener.open(sealed)
                found.append(name)
            except Unsealable:
                pass
        return found

    web_pids = [stack.web.popen.pid, *children(stack.web.popen.pid)]
    worker_pids = [w.popen.pid for w in stack.workers]
    assert len(web_pids) == 3  # gunicorn's master and its two workers
    for pid in web_pids:
        environ = _environ(pid)
        assert not {"SEALING_PRIVATE_KEYS", "BELVO_SECRET_PASSWORD", "BELVO_SECRET_ID"} & set(environ)
        assert opens(environ, sealed_token) == [] and opens(environ, sealed_creds) == []
        assert opens(environ, sealed_result) == ["RESULT_PRIVATE_KEYS"]  # the one thing it must open
        assert BELVO_SECRET_PASSWORD not in "\0".join(environ.values())
    for pid in worker_pids:
        environ = _environ(pid)
        assert not {"API_KEYS", "RESULT_PRIVATE_KEYS"} & set(environ)
        assert opens(environ, sealed_result) == []
        assert opens(environ, sealed_token) == opens(environ, sealed_creds) == ["SEALING_PRIVATE_KEYS"]
        assert API_KEY not in "\0".join(environ.values())
    assert os.getpid() not in web_pids + worker_pids


def test_bank_credentials_never_reach_redis_or_logs(stack: Stack) -> None:
    api, redis = stack.api, stack.redis
    assert api is not None and stack.web is not None
    username, password = "mfa_numeric", "numeric_code"
    # Not heimdall_mx_retail: the test above registered these credentials there (Belvo refuses a duplicate).
    body = {"institution": "heimdall_co_retail", "username": username, "password": password}
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
