"""Traces with OpenTelemetry: off unless the standard OTEL_* variables ask for them.

One trace follows a call from the API request that caused it to the outcome it recorded:

  POST /v1/sessions/{session_id}/token        SERVER    (web, app/telemetry.py)
    enqueue resume_session                     PRODUCER  (web: W3C traceparent put in the job's meta)
      resume_session                           CONSUMER  (worker, its parent read from the job's meta)
        PATCH /api/links/                      CLIENT    (the call to Belvo)
        record                                 INTERNAL  (the transition that stored what Belvo said)

A retry's job is enqueued by a sweeper long after the request: the request's context is kept in the
session record (mfa.session.RecordField.TRACEPARENT), so the retry joins the same trace. The trace
context never leaves for Belvo, which gets only the request id (X-Request-ID).

Tracing is on when OTEL_TRACES_EXPORTER names an exporter (`otlp`, `console`) or an OTLP endpoint is set
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and OTEL_SDK_DISABLED is not true.
Everything else (sampler, batch sizes, headers, resource attributes, service name) is the SDK's own
reading of the standard variables. Off, every span here is the API's no-op span.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mfa import logs

TRACER = trace.get_tracer("belvo-mfa")  # a proxy: spans go to whichever provider is installed
_PROPAGATOR = TraceContextTextMapPropagator()


def wanted(env: Mapping[str, str]) -> bool:
    """True when the standard variables ask for traces."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def _exporters(env: Mapping[str, str]) -> list[SpanExporter]:
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",") if n.strip()]
    found: list[SpanExporter] = []
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            found.append(OTLPSpanExporter())
        elif name == "console":
            found.append(ConsoleSpanExporter())
        elif name != "none":
            raise ValueError(f"OTEL_TRACES_EXPORTER: {name!r} is not one of otlp, console, none")
    return found


def configure_tracing(service_name: str, env: Mapping[str, str]) -> bool:
    """Install a tracer provider for this process if `env` asks for traces; True if one is installed.

    `service_name` is the default service.name (OTEL_SERVICE_NAME wins). A provider installed earlier
    (by a test, or a host that set one up) is kept as it is.
    """
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return True
    if not wanted(env):
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    for exporter in _exporters(env):
        provider.add_span_processor(BatchSpanProcessor(exporter))  # restarts its thread after a fork
    trace.set_tracer_provider(provider)
    return True


def origin() -> dict[str, str]:
    """The context a job should continue: the request id and the current span's W3C traceparent."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    request_id = logs.current("request_id")
    if request_id:
        carrier["request_id"] = str(request_id)
    return carrier


@contextlib.contextmanager
def producing(name: str, parent: Mapping[str, str] | None, **attributes: Any) -> Iterator[dict[str, str]]:
    """A PRODUCER span for enqueueing a job; yields the meta the job carries (request id, traceparent).

    `parent`: a stored origin (a retry's) to continue; None continues the current context.
    """
    ctx = _PROPAGATOR.extract(parent) if parent is not None else None
    with TRACER.start_as_current_span(
        name, context=ctx, kind=SpanKind.PRODUCER, attributes=_attrs(attributes)
    ):
        meta = origin()
        if parent is not None and parent.get("request_id"):
            meta["request_id"] = parent["request_id"]
        yield meta


@contextlib.contextmanager
def consuming(name: str, meta: Mapping[str, Any], **attributes: Any) -> Iterator[Span]:
    """A CONSUMER span for running a job, continuing the trace its meta carries."""
    carrier = {k: v for k, v in meta.items() if isinstance(v, str)}
    with TRACER.start_as_current_span(
        name, context=_PROPAGATOR.extract(carrier), kind=SpanKind.CONSUMER, attributes=_attrs(attributes)
    ) as span:
        yield span


@contextlib.contextmanager
def span(name: str, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any) -> Iterator[Span]:
    """A child span of the current one."""
    with TRACER.start_as_current_span(name, kind=kind, attributes=_attrs(attributes)) as current:
        yield current


def extract(headers: Mapping[str, str]) -> otel_context.Context:
    """The context an incoming request's traceparent header carries (an empty one when none)."""
    return _PROPAGATOR.extract(headers)


def _attrs(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute names use dots (`mfa.session_id`); keyword arguments cannot, so `__` stands for one."""
    return {k.replace("__", "."): v for k, v in attributes.items() if v is not None}
