"""The fast tier's service: the Flask app through its test client, and the worker's jobs run in this process.

Real parts throughout: a real redis-server (tests/conftest.py), the sandbox over real HTTP on loopback
(served from a thread here), the worker's own RQ worker class running the jobs, the sweeper's own pass.
Only the processes are left out, so a test takes milliseconds where a stack of processes takes seconds.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from rq import Queue
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

import sandbox as sandbox_app
from app import create_app
from mfa.clock import now_ms
from mfa.connections import Role, connect
from mfa.outbox import Outbox
from mfa.settings import Settings, role_env
from tests.support import BELVO_SECRET_ID, BELVO_SECRET_PASSWORD, Api
from worker import runtime
from worker.deliverer import build_delivery, deliver_pending
from worker.resume_worker import ResumeWorker
from worker.slots import CallSlots
from worker.sweeper import sweep_once

BASE = "http://localhost"


class Reply:
    """A Flask test-client answer read as a requests.Response is: status_code, headers, json(), text."""

    def __init__(self, raw: TestResponse) -> None:
        self.raw = raw
        self.status_code = raw.status_code
        self.headers = raw.headers
        self.content = raw.get_data()
        self.text = raw.get_data(as_text=True)
        self.ok = raw.status_code < 400

    def json(self) -> Any:
        return self.raw.get_json(force=True)


class JobRunner:
    """Runs what the worker process would: one sweeper pass, then every queued job with the worker's own
    RQ worker class (up to WORKER_CONCURRENCY at once, a thread each, its call leases kept alive), then
    every webhook delivery the outbox holds (when WEBHOOK_SECRETS is set); connected as the worker
    process connects (its own ACL user)."""

    def __init__(self, settings: Settings) -> None:
        redis = connect(settings, Role.WORKER)
        self.redis = redis
        self.runner = runtime.build_runner(settings, redis)
        runtime.install(self.runner)
        self.queue = Queue(settings.resume_queue, connection=redis)
        self.slots = CallSlots(settings.worker_concurrency)
        self.outbox = Outbox(redis, settings.session_retention_seconds)
        self.delivery = build_delivery(settings, redis)

    def run_due(self) -> None:
        """Sweep (expiries, lapsed leases, due retries), work the queue until it is empty, send webhooks."""
        sweep_once(self.runner.store, now_ms(), self.outbox)
        self._work()
        if self.delivery is not None:
            deliver_pending(self.delivery, "in-process")

    def _work(self) -> None:
        if not self.queue.count:
            return
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        self.runner.leases.start()
        try:
            worker = ResumeWorker([self.queue], slots=self.slots, connection=self.redis)
            worker.work(burst=True, logging_level="WARNING")
        finally:
            self.runner.leases.stop()
            for sig, handler in handlers.items():  # RQ installs its own; pytest keeps its Ctrl-C
                signal.signal(sig, handler)


@dataclass
class InProcessApi(Api):
    """The API through Flask's test client; waiting runs the worker's jobs in this process."""

    app: Flask | None = None
    jobs: JobRunner | None = field(default=None, repr=False)

    def send(self, method: str, path: str, headers: dict[str, str], **kw: Any) -> Reply:
        assert self.app is not None
        if "params" in kw:
            kw["query_string"] = kw.pop("params")
        kw.pop("timeout", None)
        client = self.app.test_client(use_cookies=False)
        return Reply(client.open(path, method=method, headers=headers, **kw))

    def tick(self) -> None:
        if self.jobs is not None:
            self.jobs.run_due()

    def open_stream(
        self, session_id: str, credential: str | None = "", last_event_id: int | None = None
    ) -> TestResponse:
        """GET .../stream, unbuffered: the answer's body is read as the app produces it."""
        assert self.app is not None
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        cred = self.api_key if credential == "" else credential
        if cred is not None:
            headers["Authorization"] = f"Bearer {cred}"
        client = self.app.test_client(use_cookies=False)
        return client.get(f"/v1/sessions/{session_id}/stream", headers=headers, buffered=False)

    def close(self) -> None:
        """Stop the app's change feed (its thread and subscription)."""
        if self.app is not None:
            self.app.extensions["mfa"].feed.close()


def service_api(
    env: Mapping[str, str], worker_redis_url: str | None = None, api_key: str | None = None
) -> InProcessApi:
    """The app built from `env` (create_app, as gunicorn builds it); with `worker_redis_url`, its jobs run
    here too, on that Redis URL (the worker's credentials).

    Each side gets only its own share of `env`, as the processes do (mfa.settings.role_env).
    """
    app = create_app(role_env(env, "web"))
    jobs = (
        JobRunner(Settings.from_env({**role_env(env, "worker"), "REDIS_URL": worker_redis_url}))
        if worker_redis_url is not None
        else None
    )
    api = InProcessApi(BASE, app=app, jobs=jobs)
    return api.as_key(api_key) if api_key else api  # type: ignore[return-value]


@contextlib.contextmanager
def sandbox_in_thread(config: Mapping[str, Any] | None = None) -> Iterator[str]:
    """The sandbox app on a free loopback port, served by a thread per request; yields its URL."""
    app = sandbox_app.create_app(
        {"secret_id": BELVO_SECRET_ID, "secret_password": BELVO_SECRET_PASSWORD, **(config or {})}
    )
    with served(app, "sandbox") as url:
        yield url


@contextlib.contextmanager
def served(app: Flask, name: str = "service") -> Iterator[str]:
    """A WSGI app on a free loopback port, a thread per request, for callers that need real HTTP (the
    sandbox delivering Belvo's webhooks to the service); yields its URL."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per call would drown real errors
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(5)
