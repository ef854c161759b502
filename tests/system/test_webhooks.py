"""Webhooks on real processes: gunicorn, `python -m worker` (its deliverer threads beside the RQ loop),
redis-server with AOF, and a real receiver on loopback in this test.

Proven here:
- a receiver that hangs holds the only delivery thread, and another session's resume still runs at
  once: deliveries never delay a Belvo call;
- events committed before the worker is SIGKILLed (one in the middle of its delivery, others never yet
  sent) are all delivered, signed, once another worker runs: none is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from devstack.processes import wait_for
from tests.receiver import HANG, Receiver, receiving
from tests.stack import build_stack, patches, wait_status
from tests.support import WEBHOOK_LOOPBACK_ENV, WEBHOOK_SECRET

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def _env(receiver: Receiver, **extra: str) -> dict[str, str]:
    return {
        **WEBHOOK_LOOPBACK_ENV,
        "WEBHOOK_URL": f"{receiver.url}/hook",
        "WEBHOOK_CONCURRENCY": "1",
        **extra,
    }


def test_a_hanging_receiver_does_not_delay_another_session_s_resume(tmp_path: Path, receiver: Receiver):
    env = _env(receiver, WEBHOOK_TIMEOUT_SECONDS="30", WEBHOOK_RETRY_SCHEDULE="0.2")
    with build_stack(tmp_path, env, workers=1) as st:
        assert st.api is not None
        receiver.plan("/hook", HANG)
        st.api.created(st.sandbox.pause())  # its event takes the worker's only delivery thread, and hangs
        receiver.wait("/hook", 1, answered=False)
        s, pause = st.submitted()
        wait_status(st, s["id"], {"succeeded"}, 10)  # the hang would last 30 s
        assert receiver.held() == 1, "the first delivery was still hanging while the session was resumed"
        assert len(patches(st.sandbox, pause["session"])) == 1
        receiver.release.set()  # the receiver gives up on the held request; the retry and the rest follow
        answered = receiver.wait("/hook", 3, timeout=15)
        types = {Webhook(WEBHOOK_SECRET).verify(r.body, r.headers)["type"] for r in answered}
        assert "session.succeeded" in types


def test_events_committed_before_a_sigkill_are_delivered_once_a_worker_runs(
    tmp_path: Path, receiver: Receiver
):
    # Attempts time out after 1 s (a dead worker's deliveries are taken over after 4 s); retries are
    # quick and many, so the ones spent while the receiver hangs leave plenty.
    env = _env(receiver, WEBHOOK_TIMEOUT_SECONDS="1", WEBHOOK_RETRY_SCHEDULE=",".join(["0.2"] * 20))
    with build_stack(tmp_path, env) as st:
        assert st.api is not None
        doomed = st.start_worker()
        receiver.hanging = True  # nothing is delivered before the kill
        first = st.api.created(st.sandbox.pause())
        receiver.wait("/hook", 1, answered=False)  # in the middle of its delivery
        second, _ = st.submitted()
        wait_status(st, second["id"], {"succeeded"}, 10)
        st.kill_machine(doomed)  # right after the commit, before any delivery
        r = st.api.request("GET", f"/v1/sessions/{second['id']}/events")
        assert [(e["type"], e["status"]) for e in r.json()["data"]] == [
            ("session.awaiting_token", "pending"),
            ("session.succeeded", "pending"),  # committed with the session's end, not yet delivered
        ]
        assert not [x for x in receiver.received if x.answered is not None]
        receiver.hanging = False
        receiver.release.set()
        st.start_worker()

        def all_delivered() -> list[dict]:
            got = [
                Webhook(WEBHOOK_SECRET).verify(x.body, x.headers) for x in receiver.on("/hook") if x.answered
            ]
            ids = {p["id"] for p in got}
            return got if len(ids) == 3 else []

        got = wait_for(all_delivered, 20, "every event to be delivered by the new worker")
        assert isinstance(got, list)
        assert {(p["data"]["id"], p["type"]) for p in got} == {
            (first["id"], "session.awaiting_token"),
            (second["id"], "session.awaiting_token"),
            (second["id"], "session.succeeded"),
        }
        for session in (first, second):
            events = st.api.request("GET", f"/v1/sessions/{session['id']}/events").json()["data"]
            wait_for(
                lambda s=session: all(
                    e["status"] == "delivered"
                    for e in st.api.request("GET", f"/v1/sessions/{s['id']}/events").json()["data"]
                ),
                10,
                "the events to read delivered",
            )
            assert events
