"""The container files agree with each other and with the service: Dockerfile targets, compose, the pin.

The image itself is built and run by the team's container check (README "Deploy"), which builds the
default target and runs web, worker and sandbox from it. These tests hold what that check cannot see:
the production target, compose's services, and that every copy of the pinned digest is the same.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from devstack.processes import ROOT
from mfa import acl

BASE = "python:3.11-slim-bookworm"


def stages() -> dict[str, list[str]]:
    """The Dockerfile's instructions by stage name (continuation lines joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            words = line.split()
            assert words[1] == BASE and words[2].upper() == "AS", f"every stage FROM {BASE} AS name: {line}"
            current = found.setdefault(words[3], [])
        current.append(" ".join(line.split()))
    return found


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_the_last_stage_runs_everything_and_production_lacks_only_the_sandbox() -> None:
    found = stages()
    assert list(found)[-1] == "dev", "the default target runs web, worker and sandbox (the container check)"
    production, dev = found["production"], found["dev"]
    assert not any("sandbox" in line for line in production if line.startswith("COPY"))
    assert "COPY --chown=root:root sandbox ./sandbox" in dev
    same = [line for line in dev[1:] if "sandbox" not in line and not line.startswith("EXPOSE")]
    assert same == [line for line in production[1:] if not line.startswith("EXPOSE")], (
        "the runtime lines agree"
    )
    for package in ("mfa", "app", "worker"):
        assert f"COPY --chown=root:root {package} ./{package}" in production
    assert "USER app" in production and any("/readyz" in line for line in production if "HEALTHCHECK" in line)


def test_the_base_digest_is_the_same_wherever_it_is_pinned(compose: dict[str, Any]) -> None:
    pinned = compose["x-base-image"][BASE]
    match = re.fullmatch(rf"docker-image://{re.escape(BASE)}@(sha256:[0-9a-f]{{64}})", pinned)
    assert match, pinned
    makefile = (ROOT / "Makefile").read_text()
    assert f"BASE_DIGEST := {match.group(1)}" in makefile and f"BASE_IMAGE := {BASE}" in makefile
    for name in ("redis-acl", "web", "worker", "sandbox"):
        assert compose["services"][name]["build"]["additional_contexts"] == {BASE: pinned}, name


def test_compose_runs_production_images_two_workers_and_redis_with_acl_users(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("web", "worker", "redis-acl"):
        assert services[name]["build"]["target"] == "production", name
    assert services["sandbox"]["build"]["target"] == "dev"
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["worker"]["healthcheck"]["test"] and services["sandbox"]["healthcheck"]["test"]
    assert "healthcheck" not in services["web"], "the web uses the image's HEALTHCHECK (/readyz)"
    command = services["redis"]["command"]
    assert command[command.index("--aclfile") + 1] == "/acl/users.acl"
    assert services["redis-acl"]["command"] == ["python", "-m", "mfa.acl", "/acl/users.acl"]
    assert services["web"]["environment"]["REDIS_URL"].startswith(f"redis://{acl.WEB.name}:")
    assert services["worker"]["environment"]["REDIS_URL"].startswith(f"redis://{acl.WORKER.name}:")
    # /v1/links is on (its sealing keys are required); compose refuses to start without them.
    assert services["web"]["environment"]["SEALING_PUBLIC_KEY"].startswith("${SEALING_PUBLIC_KEY:?")
    assert services["worker"]["environment"]["SEALING_PRIVATE_KEYS"].startswith("${SEALING_PRIVATE_KEYS:?")


def test_the_build_context_leaves_out_what_no_image_needs() -> None:
    rules = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"
    ]
    assert rules[0] == "**", "everything is left out unless listed"
    included = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = {
        word
        for lines in stages().values()
        for line in lines
        if line.startswith("COPY") and "--from" not in line
        for word in line.split()[1:-1]
        if not word.startswith("--")
    }
    assert copied == included, "the context holds exactly what the Dockerfile copies"


def test_the_compose_worker_healthcheck_is_the_workers_own_check(compose: dict[str, Any]) -> None:
    assert compose["services"]["worker"]["healthcheck"]["test"] == [
        "CMD",
        "python",
        "-m",
        "worker",
        "--check",
    ]
