"""Body framing is the server's: on real gunicorn, a chunked body over MAX_BODY_BYTES is refused with
413, never cut at the cap and accepted; a chunked body within it is read whole."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.stack import Stack, build_stack
from tests.support import API_KEY

CAP = 64 * 1024


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with build_stack(tmp_path_factory.mktemp("bodies")) as st:
        yield st


def _chunked(body: bytes, size: int = 4096) -> Iterator[bytes]:
    """A generator body: requests sends it with Transfer-Encoding: chunked and no Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _create_body(total: int) -> bytes:
    """Valid JSON (a 428 to store) padded with trailing spaces to `total` bytes."""
    pause = {"session": uuid.uuid4().hex, "link": str(uuid.uuid4()), "expiry": 600}
    head = json.dumps({"token_required": pause}).encode()
    return head + b" " * (total - len(head))


@pytest.mark.parametrize("over", [1, 10 * CAP])
def test_a_chunked_body_over_the_cap_is_413_on_gunicorn(stack: Stack, over: int) -> None:
    assert stack.web is not None
    stored_before = len(list(stack.redis.scan_iter("mfa:session:*")))
    sent = requests.post(
        f"{stack.web.url}/v1/sessions",
        data=_chunked(_create_body(CAP + over)),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert sent.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in sent.request.headers
    assert sent.status_code == 413, sent.text
    assert sent.json()["code"] == "payload_too_large"
    assert len(list(stack.redis.scan_iter("mfa:session:*"))) == stored_before, "nothing was stored"


def test_a_chunked_body_within_the_cap_is_read_whole(stack: Stack) -> None:
    assert stack.web is not None
    r = requests.post(
        f"{stack.web.url}/v1/sessions",
        data=_chunked(_create_body(CAP)),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
