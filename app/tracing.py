"""The SERVER span of each request, when tracing is on (mfa/tracing.py): the trace's root, or a child of
the caller's own trace when its request carries a W3C traceparent header."""

from __future__ import annotations

import contextlib

from flask import Flask, Response, g, request
from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, StatusCode

from mfa import tracing


def register_tracing(app: Flask) -> None:
    """Open a span as each request arrives; name it by its route and close it once answered."""

    @app.before_request
    def _open() -> None:
        span = tracing.TRACER.start_span(
            request.method,
            context=tracing.extract({k.lower(): v for k, v in request.headers.items()}),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.path},
        )
        g.trace_span = span
        g.trace_token = context.attach(trace.set_span_in_context(span))

    @app.after_request
    def _answered(resp: Response) -> Response:
        span = g.get("trace_span")
        if span is not None:
            rule = request.url_rule
            if rule is not None:
                span.update_name(f"{request.method} {rule.rule}")
                span.set_attribute("http.route", rule.rule)
            span.set_attribute("http.response.status_code", resp.status_code)
            if resp.status_code >= 500:
                span.set_status(StatusCode.ERROR)
        return resp

    @app.teardown_request
    def _close(_: BaseException | None) -> None:
        token = g.pop("trace_token", None)
        span = g.pop("trace_span", None)
        if span is not None:
            span.end()
        if token is not None:
            with contextlib.suppress(ValueError):  # see app/logs.py: a streamed answer's other context
                context.detach(token)
