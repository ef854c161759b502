"""The baseline: a bare Flask app doing one Redis operation per request, served like the real one.

gunicorn runs it with the repository's gunicorn.conf.py (`bench.baseline_app:create_app()`), against
the same Redis, so the only difference from the service is the service's own code.
"""

from __future__ import annotations

import os
import secrets

from flask import Flask, Response, jsonify
from redis import Redis
from rq import Queue

NOOP_JOB = "bench.noop.noop"
BASELINE_QUEUE = "bench-baseline"
HSET_PREFIX = "bench:hset:"


def create_app() -> Flask:
    """One Redis client and one RQ queue per process, as the service wires them."""
    app = Flask(__name__)
    redis = Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=1, socket_timeout=5)
    queue = Queue(os.environ.get("BENCH_BASELINE_QUEUE", BASELINE_QUEUE), connection=redis)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/hgetall/<key_id>")
    def hgetall(key_id: str) -> Response:
        raw = redis.hgetall(f"mfa:session:{key_id}")
        return jsonify({k.decode(): v.decode() for k, v in raw.items()})

    @app.post("/enqueue")
    def enqueue() -> tuple[Response, int]:
        # result_ttl=0 as the service's resume job: nothing is kept once it has run.
        job = queue.enqueue(NOOP_JOB, result_ttl=0)
        return jsonify({"id": job.id}), 202

    @app.post("/hset")
    def hset() -> tuple[Response, int]:
        key_id = secrets.token_hex(16)
        redis.hset(HSET_PREFIX + key_id, mapping={"id": key_id, "status": "awaiting_token"})
        return jsonify({"id": key_id}), 201

    return app
