"""Logging set-up shared by the web and the worker: one line per event, never bodies or headers."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class _NoRequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = "-"
        return True


def configure_logging(level: str, request_id: logging.Filter | None = None) -> None:
    """Log to stderr at `level`; `request_id` stamps each record with its request's id (default "-")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(request_id or _NoRequestId())
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
