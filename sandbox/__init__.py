"""A Belvo-compatible stand-in server for development, tests and benchmarks."""

from __future__ import annotations

from typing import Any

from flask import Flask

from . import belvo_api, control, links
from .config import build_config
from .errors import register_error_handlers
from .gateway import register_gateway
from .state import SandboxState


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build a sandbox app with its own empty state; `config` overrides the defaults and env."""
    app = Flask(__name__)
    # Belvo's bodies read best in the order their docs list the fields.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["sandbox_state"] = SandboxState(build_config(config))
    register_gateway(app)
    register_error_handlers(app)
    app.register_blueprint(links.bp)
    app.register_blueprint(belvo_api.bp)
    app.register_blueprint(control.bp)
    return app


__all__ = ["create_app"]
