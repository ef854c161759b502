"""The sandbox's settings: defaults, environment overrides and runtime-tunable values."""

from __future__ import annotations

import os
from typing import Any

from .errors import InvalidControlRequest

DEFAULTS: dict[str, Any] = {
    "secret_id": "sandbox-secret-id",
    "secret_password": "sandbox-secret-password",
    "latency_ms": 0,
    "token_required_shape": "list",
    "session_expiry_seconds": 9600,
    # How a 428 writes `expiry`: "integer" (the spec), "string" (Belvo's MFA guide: "720") or "absent"
    # (the spec marks no field of the 428 required).
    "token_required_expiry": "integer",
    "control_loopback_only": True,
}

# What `PUT /_sandbox/config` may change; the secrets and the control policy are fixed at start.
TUNABLE = ("latency_ms", "token_required_shape", "session_expiry_seconds", "token_required_expiry")
EXPIRY_FORMS = ("integer", "string", "absent")

ENVIRONMENT = {"secret_id": "SANDBOX_SECRET_ID", "secret_password": "SANDBOX_SECRET_PASSWORD"}


def build_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the environment, then explicit overrides (None values are ignored)."""
    config = dict(DEFAULTS)
    for key, variable in ENVIRONMENT.items():
        if os.environ.get(variable):
            config[key] = os.environ[variable]
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    unknown = set(given) - set(DEFAULTS)
    if unknown:
        raise InvalidControlRequest(f"unknown settings: {sorted(unknown)}")
    config.update(given)
    config.update(validate_tunables({key: config[key] for key in TUNABLE}))
    return config


def validate_tunables(body: Any) -> dict[str, Any]:
    """Check a partial update of the tunable settings and return it."""
    if not isinstance(body, dict):
        raise InvalidControlRequest("expected a JSON object")
    unknown = set(body) - set(TUNABLE)
    if unknown:
        raise InvalidControlRequest(f"not tunable: {sorted(unknown)}; tunable: {list(TUNABLE)}")
    if "latency_ms" in body and not _is_int(body["latency_ms"], minimum=0):
        raise InvalidControlRequest("latency_ms must be an integer >= 0")
    if "token_required_shape" in body and body["token_required_shape"] not in ("list", "object"):
        raise InvalidControlRequest("token_required_shape must be 'list' or 'object'")
    if "session_expiry_seconds" in body and not _is_int(body["session_expiry_seconds"], minimum=1):
        raise InvalidControlRequest("session_expiry_seconds must be an integer >= 1")
    if "token_required_expiry" in body and body["token_required_expiry"] not in EXPIRY_FORMS:
        raise InvalidControlRequest(f"token_required_expiry must be one of {list(EXPIRY_FORMS)}")
    return dict(body)


def _is_int(value: Any, minimum: int) -> bool:
    # bool is an int subclass; `true` is never a sensible latency.
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
