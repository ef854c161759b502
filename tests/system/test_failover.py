"""Redis loses its primary while sessions are created, submitted and resumed: Sentinel promotes the replica.

The stack: gunicorn and two workers configured with REDIS_SENTINELS (never a server's address), and
REDIS_WAIT_REPLICAS=1; Redis is a primary, a replica and three sentinels (tests/sentinels.py). Traffic
runs flows (a sandbox 428 stored, its token submitted, the session read until it ends) from two
threads while the primary is SIGKILLed. Then, as a supervisor would, the dead server is started again,
and Sentinel turns it into a replica of the new primary.

Proven:
- during the switch the API answers 503 `store_unavailable`, never another error, and no request takes
  longer than its bound (the client's timeout is far above it: nothing hangs);
- afterwards every flow succeeds with no step taken by hand;
- no submission answered 202 is lost: each such session is on the new primary and ends in a final
  status (each flow that ran wholly before the kill or after the recovery ends `succeeded`);
- the time from the kill to the first success is printed (`pytest -s` shows it).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from devstack.processes import wait_for
from mfa.keys import session_key
from tests.stack import Stack, build_stack
from tests.support import API_KEY, FINAL

pytestmark = pytest.mark.slow

CLIENT_TIMEOUT = 30.0  # the HTTP client's own timeout: a request that reaches it has hung
REQUEST_BOUND = 8.0  # the longest any request may take: Redis timeouts (5 s) plus Sentinel look-ups


@dataclass
class Call:
    """One request of the traffic: what, when, how long, and its status (0: no HTTP answer)."""

    kind: str
    started: float
    took: float
    status: int


@dataclass
class Traffic:
    """Flows run from threads until stopped; every request and every 202'd session is kept."""

    stack: Stack
    calls: list[Call] = field(default_factory=list)
    accepted: list[tuple[str, float]] = field(default_factory=list)  # (session id, submitted at)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _call(
        self, http: requests.Session, kind: str, method: str, path: str, **kw: object
    ) -> requests.Response | None:
        assert self.stack.web is not None
        started = time.monotonic()
        try:
            r = http.request(method, self.stack.web.url + path, timeout=CLIENT_TIMEOUT, **kw)  # type: ignore[arg-type]
        except requests.RequestException:
            r = None
        with self.lock:
            self.calls.append(
                Call(kind, started, time.monotonic() - started, r.status_code if r is not None else 0)
            )
        return r

    def flow(self, http: requests.Session) -> None:
        pause = self.stack.sandbox.pause()
        auth = {"Authorization": f"Bearer {API_KEY}"}
        r = self._call(http, "create", "POST", "/v1/sessions", json={"token_required": pause}, headers=auth)
        if r is None or r.status_code != 201:
            return
        session = r.json()
        secret = {"Authorization": f"Bearer {session['client_secret']}"}
        path = f"/v1/sessions/{session['id']}"
        r = self._call(http, "submit", "POST", path + "/token", json={"token": "111111"}, headers=secret)
        if r is None or r.status_code != 202:
            return
        with self.lock:
            self.accepted.append((session["id"], time.monotonic()))
        deadline = time.monotonic() + 10
        while not self.stop.is_set() and time.monotonic() < deadline:
            r = self._call(http, "read", "GET", path, headers=secret)
            if r is not None and r.status_code == 200 and r.json()["status"] in FINAL:
                return
            time.sleep(0.05)

    def run(self) -> None:
        with requests.Session() as http:
            while not self.stop.is_set():
                self.flow(http)


@pytest.fixture
def ha_stack(tmp_path: Path) -> Iterator[Stack]:
    env = {"REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_TIMEOUT_MS": "500", "UPSTREAM_TIMEOUT_SECONDS": "5"}
    with build_stack(tmp_path, env, web_workers=2, workers=2, sentinel=True) as st:
        yield st


def test_losing_the_primary_answers_503_then_everything_goes_on(ha_stack: Stack) -> None:
    st, group = ha_stack, ha_stack.group
    assert group is not None
    traffic = Traffic(st)
    threads = [threading.Thread(target=traffic.run, name=f"traffic-{i}", daemon=True) for i in range(2)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(traffic.accepted) >= 5, 30, "flows to run before the kill")

    old_port = group.primary_port()
    killed_at = time.monotonic()
    dead = group.kill_primary()
    new_port = group.await_failover(old_port, 30)
    promoted_at = time.monotonic()
    group.restart(dead)  # as a supervisor restarts a crashed process; Sentinel demotes it to a replica
    rejoined_at = time.monotonic()

    def succeeded_after_kill(kind: str, status: int) -> list[Call]:
        return [
            c for c in list(traffic.calls) if c.kind == kind and c.status == status and c.started > killed_at
        ]

    wait_for(lambda: succeeded_after_kill("submit", 202), 30, "a submission to succeed after the kill")
    recovered_at = min(c.started + c.took for c in succeeded_after_kill("submit", 202))
    wait_for(
        lambda: len([a for a in traffic.accepted if a[1] > recovered_at]) >= 5, 30, "flows after recovery"
    )
    traffic.stop.set()
    for thread in threads:
        thread.join(CLIENT_TIMEOUT + 5)

    first_created = min(c.started + c.took for c in succeeded_after_kill("create", 201))
    statuses = Counter((c.kind, c.status) for c in traffic.calls if c.started > killed_at)
    print(
        f"\nfailover: primary {old_port} SIGKILLed -> replica {new_port} promoted after "
        f"{promoted_at - killed_at:.2f}s; "
        f"first 201 after {first_created - killed_at:.2f}s; old primary back as a replica after "
        f"{rejoined_at - killed_at:.2f}s; first 202 after {recovered_at - killed_at:.2f}s"
    )
    print(f"answers from the kill on: {dict(statuses)}")
    print(f"longest request: {max(c.took for c in traffic.calls):.2f}s of {len(traffic.calls)}")

    # During the switch: 503s, and nothing else went wrong.
    assert statuses[("create", 503)] + statuses[("submit", 503)] + statuses[("read", 503)] > 0, (
        "the switch was hit"
    )
    unexpected = {k: n for k, n in statuses.items() if k[1] not in (200, 201, 202, 503)}
    assert not unexpected, unexpected
    # Nothing hung: no request reached the client's timeout, and none took longer than the bound.
    assert all(c.status != 0 for c in traffic.calls), "a request got no answer"
    assert max(c.took for c in traffic.calls) < REQUEST_BOUND

    # No 202 lost: every accepted session is on the new primary and ends; flows outside the switch succeed.
    def final(session_id: str) -> str | None:
        raw = st.redis.hget(session_key(session_id), "status")
        status = raw.decode() if raw else None
        return status if status in FINAL else None

    for session_id, _ in traffic.accepted:
        assert st.redis.exists(session_key(session_id)), f"{session_id} got a 202 and was lost"
        wait_for(lambda sid=session_id: final(sid), 30, f"{session_id} to end")
    outcomes = Counter(f"{final(sid)} {st.outcome(sid)[1] or ''}".strip() for sid, _ in traffic.accepted)
    print(f"202'd sessions: {len(traffic.accepted)}, ended {dict(outcomes)}")
    clear = [sid for sid, at in traffic.accepted if at < killed_at - 5 or at > recovered_at]
    assert clear and all(final(sid) == "succeeded" for sid in clear)
