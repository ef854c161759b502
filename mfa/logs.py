"""Logging set-up shared by the web and the worker: one JSON object per line on stdout.

Each line carries the context it was logged in: the API request's `request_id` (the web binds it for
the request, the worker for the job that request enqueued), the `session_id`, `step` and `attempt` of
the job in hand, Belvo's own `belvo_request_id` when a line reports an answer, and the trace's ids
when tracing is on. Bodies, headers and secrets are never logged: messages name ids and codes only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

from opentelemetry import trace

# The fields a line may carry beyond time, level, logger and message, in the order they are written:
# from the bound context or a record's `extra`.
CONTEXT_FIELDS = (
    "request_id",
    "session_id",
    "step",
    "attempt",
    "job_id",
    "belvo_request_id",
    "method",
    "route",
    "status",
    "duration_ms",
)
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # a request id we accept, log and pass on
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

_context: ContextVar[Mapping[str, Any]] = ContextVar("mfa_log_context", default=MappingProxyType({}))


def bind(**fields: Any) -> Token[Mapping[str, Any]]:
    """Add `fields` to every line logged in this context (thread, greenlet or task) until `unbind`."""
    return _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def unbind(token: Token[Mapping[str, Any]]) -> None:
    """Restore the context as it was before the `bind` that returned `token`."""
    _context.reset(token)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """`bind` for the duration of a block."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def current(name: str) -> Any:
    """A field of the current context (None when unbound)."""
    return _context.get().get(name)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's context: the bound fields, overridden by any passed with `extra=`."""
    context = _context.get()
    found = {}
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is None:
            value = context.get(name)
        if value is not None:
            found[name] = value
    return found


_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)  # made once: a line is on every request


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ms), level, logger, message, context, trace ids, exception."""

    _last: tuple[int, str] = (-1, "")  # the last second formatted, and its text: most lines share one

    def _time(self, created: float, msecs: float) -> str:
        second, stamp = self._last  # one read of one tuple: threads never see half an update
        if int(created) != second:
            second = int(created)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._last = (second, stamp)
        return f"{stamp}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record.created, record.msecs),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
            line["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return _ENCODER.encode(line)


class TextFormatter(logging.Formatter):
    """The human format (LOG_FORMAT=text): one line per record with the request id in brackets."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        record.request_id = fields.pop("request_id", "-")
        text = super().format(record)
        return text + "".join(f" {k}={v}" for k, v in fields.items())


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for LOG_FORMAT (`json` or `text`)."""
    return TextFormatter() if log_format == "text" else JsonFormatter()


def configure_logging(level: str, log_format: str = "json") -> None:
    """Log every record at `level` or above to stdout, one line each, in `log_format`."""
    # Neither format writes the caller's file and line, thread or process: skip finding them for every
    # record (the logging HOWTO's "Optimization"), as the web logs a line per request.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
