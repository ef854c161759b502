"""gunicorn settings, read from the environment (the Procfile and Dockerfile run gunicorn with this file).

gevent workers (app/server.py says why, and what it adds): each process holds up to WEB_CONNECTIONS
connections at once, idle, slow or streaming, at the cost of a greenlet each. Two processes on a 2-core
host, one per core: request handling is CPU-bound Python, and no request waits on a thread.
"""

import itertools
import os
import shutil
import sys
import tempfile

from gunicorn.glogging import Logger

from mfa.logs import formatter


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
# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new connections
# evenly between them. On one shared socket, the first gevent worker to wake takes each connection, and
# an idle one can take nearly all of them (and of the streams, which stay) while the other sits idle.
reuse_port = True
timeout = 30  # a worker whose event loop is blocked this long is killed and replaced
graceful_timeout = 20
# No max_requests: recycling a worker would cut every live stream it holds at once (they resume, but all
# together). Nothing is known to leak; the benchmarks' memory figures would show it first.
# Import the app once in the master; each worker forks from it and only then monkey-patches for gevent.
# Nothing that blocks or locks is made at import or in create_app (Redis pools reset themselves in a
# new process, the change feed starts on first use), so forking before patching is safe.
preload_app = True
# No control socket (gunicornc): gunicorn would create it under $HOME/.gunicorn, which the image's user
# cannot write (and every gunicorn on a host would share one path). Signals still manage the master.
control_socket_disable = True
# The app logs one JSON line per request itself (app/logs.py, WEB_ACCESS_LOG), with its request id
# and route; gunicorn's own lines (start, stop, a worker's death) go out in the same format.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


class ServiceLogger(Logger):
    """gunicorn's own log lines in the service's format (LOG_FORMAT), on stdout like the app's."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter(os.environ.get("LOG_FORMAT", "json").strip().lower()))
            if hasattr(handler, "setStream"):
                handler.setStream(sys.stdout)


logger_class = ServiceLogger

# Metrics (app/metrics.py) under several processes: each process writes its values to files in
# PROMETHEUS_MULTIPROC_DIR and a scrape sums them. That directory must be empty when the server
# starts and set before the app (and so prometheus_client) is imported: here, at the master's start.
# This file runs again on a reload (HUP); what must happen once per master is guarded.
_METRICS_ON = os.environ.get("METRICS_ENABLED", "true").strip().lower() not in ("0", "false", "no", "off")
if _METRICS_ON and not os.environ.get("BELVO_MFA_METRICS_DIR"):
    _given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if _given:  # a directory for this service alone: an earlier run's values would be summed in
        os.makedirs(_given, exist_ok=True)
        for _name in os.listdir(_given):
            if _name.endswith(".db"):
                os.remove(os.path.join(_given, _name))
        os.environ["BELVO_MFA_METRICS_DIR"] = "given"
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="belvo-mfa-metrics-")
        os.environ["BELVO_MFA_METRICS_DIR"] = "created"

if _METRICS_ON:
    from prometheus_client import multiprocess, values

    # Values are filed by worker *slot* rather than pid: a worker that replaces a dead one takes over
    # its predecessor's files (counters carry on), so the directory holds a few files per slot instead
    # of growing by two files per recycled worker. The master's pid is part of the slot, so a second
    # master (USR2 upgrade) never shares a file with the first.
    if not hasattr(values, "belvo_mfa_slot"):
        values.belvo_mfa_slot = {"id": f"master-{os.getpid()}"}
        values.ValueClass = values.MultiProcessValue(process_identifier=lambda: values.belvo_mfa_slot["id"])

    def pre_fork(server, worker):
        """Give the new worker the lowest slot that no live worker holds."""
        held = {getattr(w, "metrics_slot", None) for w in server.WORKERS.values()}
        slots = (f"{server.pid}-{i}" for i in itertools.count())
        worker.metrics_slot = next(slot for slot in slots if slot not in held)

    def post_fork(server, worker):
        """In the worker: file values under its slot from now on."""
        values.belvo_mfa_slot["id"] = worker.metrics_slot

    def child_exit(server, worker):
        """A worker is gone: its live gauges (calls in flight) no longer count; its counters still do."""
        multiprocess.mark_process_dead(worker.metrics_slot)

    def on_exit(server):
        """Remove the directory made above (one the operator gave is left in place)."""
        if os.environ.get("BELVO_MFA_METRICS_DIR") == "created":
            shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
