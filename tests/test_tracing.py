"""Traces: one trace from the token POST through the queue (traceparent in the job's meta) to the Belvo
call and the recorded outcome, retries included. The app and RQ's worker run in this process, so one
in-memory exporter sees every span of both sides."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from rq import Queue
from rq.job import Job

from mfa import tracing
from tests.support import first

TOKEN_ROUTE = "POST /v1/sessions/<session_id>/token"


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """A tracer provider with an in-memory exporter, installed before this module's apps are built (a
    process gets one provider: tests of other modules that run later see tracing on, which is harmless)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # later spans are dropped, not kept in memory


def named(found: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in found if s.name == name]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _submit(api, sandbox, spans, token="111111", headers=None):
    body = sandbox.pause()
    s = api.created(body)
    spans.clear()
    r = api.submit(s["id"], token, credential=s["client_secret"], headers=headers or {})
    assert r.status_code == 202, r.text
    return s, first(body)


def test_one_trace_from_the_token_post_to_the_recorded_outcome(spans, api, sandbox, redis):
    s, _ = _submit(api, sandbox, spans)
    [job] = [Job.fetch(i, connection=redis) for i in Queue("belvo-resume", connection=redis).job_ids]
    assert job.args == (s["id"], 1, 1)  # ids only; the context rides in the meta
    assert set(job.meta) == {"request_id", "traceparent"}
    assert api.wait(s["id"])["status"] == "succeeded"
    found = spans.get_finished_spans()
    [server] = named(found, TOKEN_ROUTE)
    [producer] = named(found, "enqueue resume_session")
    [consumer] = named(found, "resume_session")
    [client] = named(found, "PATCH /api/links/")
    [record] = named(found, "record")
    assert {server.kind, producer.kind, consumer.kind, client.kind, record.kind} == {
        SpanKind.SERVER,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.CLIENT,
        SpanKind.INTERNAL,
    }
    trace_id = server.context.trace_id
    assert {x.context.trace_id for x in (producer, consumer, client, record)} == {trace_id}
    assert parent_of(producer) == server.context.span_id
    assert parent_of(consumer) == producer.context.span_id  # only the job's meta could have told it
    assert parent_of(client) == parent_of(record) == consumer.context.span_id
    assert job.meta["traceparent"].split("-")[1:3] == [f"{trace_id:032x}", f"{producer.context.span_id:016x}"]
    assert server.attributes["http.response.status_code"] == 202
    assert consumer.attributes["mfa.session_id"] == s["id"]
    assert client.attributes["http.response.status_code"] == 200
    assert record.attributes["mfa.result"] == "succeeded"
    assert client.start_time < client.end_time <= record.start_time


def test_a_retry_continues_the_same_trace(spans, api, sandbox):
    sandbox.fault("status", status=503, count=1)
    s, _ = _submit(api, sandbox, spans)
    assert api.wait(s["id"])["status"] == "succeeded"
    found = spans.get_finished_spans()
    [server] = named(found, TOKEN_ROUTE)
    consumers = named(found, "resume_session")
    assert [c.attributes["mfa.attempt"] for c in consumers] == [1, 2]
    assert {c.context.trace_id for c in consumers} == {server.context.trace_id}
    statuses = [c.attributes["http.response.status_code"] for c in named(found, "PATCH /api/links/")]
    assert statuses == [503, 200]
    # The retry was enqueued by the sweeper, from the context stored with the session.
    producers = named(found, "enqueue resume_session")
    assert [parent_of(p) for p in producers] == [server.context.span_id, server.context.span_id]


def test_a_callers_traceparent_is_continued(spans, api, sandbox):
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{caller_trace}-{caller_span}-01"}
    _submit(api, sandbox, spans, headers=headers)
    [server] = named(spans.get_finished_spans(), TOKEN_ROUTE)
    assert f"{server.context.trace_id:032x}" == caller_trace
    assert f"{parent_of(server):016x}" == caller_span


def test_no_span_carries_the_token(spans, api, sandbox):
    s, _ = _submit(api, sandbox, spans, token="738291")
    api.wait(s["id"])
    for span in spans.get_finished_spans():
        for key, value in (span.attributes or {}).items():
            assert "738291" not in str(value), (span.name, key)
        assert "738291" not in span.name


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_tracing_is_off_unless_the_standard_variables_ask(env, on):
    assert tracing.wanted(env) is on
