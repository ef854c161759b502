"""The gunicorn worker the web tier runs on (gunicorn.conf.py): gevent's, plus a deadline on request bodies.

Why gevent: each connection is a greenlet, not a thread, so thousands of idle, slow or long-lived
connections (live streams, long-polls) per process cost memory, never the workers that serve everyone
else. redis-py, RQ's enqueue and logging are plain Python over sockets, which gevent's monkey-patching
(done by the worker in each process, before the app runs) makes cooperative.

What the gevent worker already bounds, and what it does not (gunicorn.workers.base_async.AsyncWorker):
- The request line and headers: each is parsed under one gevent.Timeout of `keepalive` seconds (idle
  keep-alive wait included), after which the connection is closed, however the bytes trickle in.
  gunicorn.conf.py sets `keepalive` from WEB_HEADER_TIMEOUT_SECONDS.
- Not the body: the app reads it from a socket with no timeout, so a client that announces a body
  and sends a byte now and then holds its greenlet, and a place in worker_connections, for ever.
  BodyDeadline reads every body in full before the app runs, within WEB_BODY_TIMEOUT_SECONDS in all
  (one deadline, not one per read: a slow drip cannot stretch it), and otherwise answers 408 and closes
  the connection. Bodies are at most MAX_BODY_BYTES, so holding one in memory is what the app did anyway.

On stop (SIGTERM, a restart) the worker closes the process's change feed, so live streams end at once
with a retry hint and long-polls answer, instead of holding the shutdown for `graceful_timeout`.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import gevent
from gevent.monkey import MonkeyPatchWarning
from gunicorn.workers.ggevent import GeventWorker

from mfa.errors import ConfigError
from mfa.settings import Settings

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
DEFAULT_BODY_TIMEOUT_SECONDS = 10.0
STOP_CHECK_SECONDS = 0.2


class BodyTimeout(Exception):
    """The request body did not arrive in time. An Exception (not gevent's BaseException Timeout), so
    gunicorn's body reader marks itself failed and the connection is not reused."""


def body_timeout_seconds(env: dict[str, str] | None = None) -> float:
    """WEB_BODY_TIMEOUT_SECONDS: how long a request's whole body may take to arrive."""
    raw = (os.environ if env is None else env).get("WEB_BODY_TIMEOUT_SECONDS", "").strip()
    try:
        seconds = float(raw) if raw else DEFAULT_BODY_TIMEOUT_SECONDS
    except ValueError:
        raise ConfigError(f"WEB_BODY_TIMEOUT_SECONDS must be a number, got {raw!r}") from None
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"WEB_BODY_TIMEOUT_SECONDS must be above 0, got {raw!r}")
    return seconds


class BodyDeadline:
    """WSGI middleware: the request body, read in full within `seconds`, or 408 without calling `app`."""

    def __init__(self, app: WSGIApp, seconds: float, max_bytes: int) -> None:
        self.app, self.seconds, self.max_bytes = app, seconds, max_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not chunked and (not length.isdigit() or int(length) == 0 or int(length) > self.max_bytes):
            # No body; or one the app refuses (413) without reading a byte of it.
            return self.app(environ, start_response)
        try:
            with gevent.Timeout(self.seconds, BodyTimeout):
                # One byte past the cap is enough for the app to answer 413 to a chunked body.
                body = environ["wsgi.input"].read(self.max_bytes + 1)
        except BodyTimeout:
            return self._request_timeout(start_response)
        # The body is now whole and of known length: so the app sees it, and a chunked body past the cap
        # is refused (413) as one with a Content-Length is, instead of being cut at the cap.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)

    def _request_timeout(self, start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = json.dumps(
            {
                "type": "urn:belvo-mfa:problem:request_timeout",
                "title": "Request Timeout",
                "status": 408,
                "detail": f"The request body did not arrive within {self.seconds:g} s.",
                "code": "request_timeout",
            }
        ).encode()
        start_response(
            "408 Request Timeout",
            [("Content-Type", "application/problem+json"), ("Content-Length", str(len(body)))],
        )
        return [body]


class DeadlineWorker(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker with BodyDeadline in front of the app, closing live streams on stop."""

    wsgi: WSGIApp

    def patch(self) -> None:
        # The app was imported before this patch (preload_app), and with it `ssl`: gevent warns that the
        # modules holding ssl's classes directly (urllib3, redis.asyncio) stay blocking. The web process
        # opens no TLS connection through either; redis-py's client looks `ssl` up when it connects.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MonkeyPatchWarning)
            super().patch()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.served = self.wsgi  # the Flask app, for its change feed
        self.wsgi = BodyDeadline(self.wsgi, body_timeout_seconds(), Settings.from_env().max_body_bytes)

    def run(self) -> None:
        gevent.spawn(self._close_feed_on_stop)
        super().run()

    def _close_feed_on_stop(self) -> None:
        while self.alive:
            gevent.sleep(STOP_CHECK_SECONDS)
        services = getattr(self.served, "extensions", {}).get("mfa")
        if services is not None:
            services.feed.close()
