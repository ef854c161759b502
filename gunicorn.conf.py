"""gunicorn settings, read from the environment (the Procfile and Dockerfile run gunicorn with this file).

Defaults are what the benchmarks measured best on a 2-core host: 2 processes x 4 threads.
"""

import os

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
# Access log lines carry method, path, status and timing; no headers, so no credentials.
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG", "1") == "1" else None
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
