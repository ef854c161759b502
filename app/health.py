"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel

from app.errors import ApiError
from app.openapi import documented
from app.services import services

bp = Blueprint("health", __name__)


class HealthOut(BaseModel):
    """A probe's answer."""

    status: str


@bp.get("/healthz")
@documented("The process is up", responses={200: HealthOut}, auth=None)
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@documented("Redis is reachable", responses={200: HealthOut, 503: None}, auth=None)
def readyz() -> Response:
    try:
        services().redis.ping()
    except Exception:  # noqa: BLE001 - any failure to ping means not ready
        raise ApiError(
            503, "store_unavailable", "The session store is unavailable", headers={"Retry-After": "1"}
        ) from None
    return jsonify({"status": "ready"})
