"""gunicorn settings, read from the environment (the Procfile and Dockerfile run gunicorn with this file).

gevent workers (app/server.py says why, and what it adds): each process holds up to WEB_CONNECTIONS
connections at once, idle, slow or streaming, at the cost of a greenlet each. Two processes on a 2-core
host, one per core: request handling is CPU-bound Python, and no request waits on a thread.
"""

import os


def _whole_seconds(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"gunicorn.conf.py: {name} must be a whole number of seconds >= 1, got {raw!r}")
    return int(raw)


bind = f"{os.environ.get('WEB_BIND_HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104 - a container serves on all interfaces
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "app.server.DeadlineWorker"
worker_connections = int(os.environ.get("WEB_CONNECTIONS", "2000"))
# Under the gevent worker, keepalive is also the deadline for a request's line and headers (the
# keep-alive wait before them included): a client that has not sent them all by then is disconnected.
keepalive = _whole_seconds("WEB_HEADER_TIMEOUT_SECONDS", 5)
timeout = 30  # a worker whose event loop is blocked this long is killed and replaced
graceful_timeout = 20
# No max_requests: recycling a worker would cut every live stream it holds at once (they resume, but all
# together). Nothing is known to leak; the benchmarks' memory figures would show it first.
# Import the app once in the master; each worker forks from it and only then monkey-patches for gevent.
# Nothing that blocks or locks is made at import or in create_app (Redis pools reset themselves in a
# new process, the change feed starts on first use), so forking before patching is safe.
preload_app = True
# Access log lines carry method, path, status and timing; no headers, so no credentials.
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG", "1") == "1" else None
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
