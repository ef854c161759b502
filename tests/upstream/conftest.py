"""The sandbox as its own process over real HTTP (tests/upstream/process.py): each test module here gets
its own, reset before each test, and the official SDK's client of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from belvo.client import Client

from tests.upstream.process import SECRET, running_sandbox


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    secrets = {"SANDBOX_SECRET_ID": SECRET[0], "SANDBOX_SECRET_PASSWORD": SECRET[1]}
    with running_sandbox(tmp_path_factory.mktemp("sandbox"), env=secrets) as url:
        yield url


@pytest.fixture(autouse=True)
def fresh(base_url: str) -> None:
    requests.post(f"{base_url}/_sandbox/reset", timeout=5).raise_for_status()


@pytest.fixture
def client(base_url: str):
    sdk = Client(*SECRET, base_url)
    yield sdk
    sdk.session.session.close()
