"""The request id that ties an answer to its log lines, its job and its Belvo call; one line per request."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time

from flask import Flask, Response, g, request

from mfa import logs

access = logging.getLogger("app.access")


def register_request_id(app: Flask, access_log: bool = True) -> None:
    """Take a sane X-Request-ID from the caller or make one, bind it for the request's log lines (and the
    jobs it enqueues), send it back; with `access_log`, log one line per request when it is answered."""

    @app.before_request
    def _assign() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if logs.REQUEST_ID.fullmatch(given) else secrets.token_hex(16)
        g.log_binding = logs.bind(request_id=g.request_id)
        g.started = time.perf_counter()

    @app.after_request
    def _echo(resp: Response) -> Response:
        resp.headers["X-Request-ID"] = g.get("request_id", "")
        if access_log:
            rule = request.url_rule
            elapsed_ms = round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 1)
            access.info(
                "%s %s %s",
                request.method,
                request.path,
                resp.status_code,
                extra={
                    "method": request.method,
                    "route": rule.rule if rule is not None else None,
                    "status": resp.status_code,
                    "duration_ms": elapsed_ms,
                },
            )
        return resp

    @app.teardown_request
    def _unbind(_: BaseException | None) -> None:
        binding = g.pop("log_binding", None)
        if binding is not None:
            # A response streamed from another context (a generator) cannot reset this one; its
            # thread or greenlet ends with the request anyway.
            with contextlib.suppress(ValueError):
                logs.unbind(binding)
