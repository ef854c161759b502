"""gunicorn settings, read from the environment (the Procfile and Dockerfile run gunicorn with this file).

Defaults are what the benchmarks measured best on a 2-core host: 2 processes x 4 threads.
"""

import itertools
import os
import shutil
import sys
import tempfile

from gunicorn.glogging import Logger

from mfa.logs import formatter

bind = f"{os.environ.get('WEB_BIND_HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104 - a container serves on all interfaces
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 10000
max_requests_jitter = 1000
# Import the app once in the master: a worker recycled by max_requests starts at once instead of
# importing Flask, pydantic and the app again while serving. Nothing connects at import (the Redis
# pool opens sockets on first use, per process), so forking after it is safe.
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

    # Values are filed by worker *slot* rather than pid: a worker recycled by max_requests takes over
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
