"""Races on a stack of two gunicorn processes and two RQ workers: every contested step has one winner.

Proven here, with real concurrent HTTP requests, each on its own connection:
- of 50 simultaneous token submissions for one step exactly one is accepted (202), the other 49 get
  409, and Belvo receives exactly one PATCH;
- a submission racing the session's expiry either wins (202, then at most one PATCH, sent before
  expires_at) or loses (410, the session `expired`, no PATCH): never both, never a PATCH for a
  session recorded as expired;
- a cancel racing a submission: exactly one of them wins, the record matches the winner, and a
  PATCH happened if and only if the submission won.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import pytest
import requests

from tests.stack import Stack, build_stack, epoch, patches, wait_status
from tests.support import FINAL, first

pytestmark = pytest.mark.slow

T = TypeVar("T")
SUBMITTERS = 50
ROUNDS = 60
# A PATCH leaves after the worker checked expires_at; it reaches the sandbox this much later at most.
SEND_LATENCY = 0.25


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with build_stack(tmp_path_factory.mktemp("races"), web_workers=2, workers=2) as st:
        yield st


@pytest.fixture(autouse=True)
def _reset_sandbox(stack: Stack) -> None:
    stack.sandbox.reset()


def fire(calls: list[Callable[[], T]]) -> list[T]:
    """Run every call in its own thread, all released at once; results in the order of `calls`."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def codes(responses: list[requests.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def test_concurrent_submissions_for_one_step_have_one_winner(stack):
    api = stack.api
    for _ in range(4):
        body = stack.sandbox.pause()
        s = api.created(body)
        answers = fire([partial(api.submit, s["id"], credential=s["client_secret"])] * SUBMITTERS)
        assert codes(answers) == {202: 1, 409: SUBMITTERS - 1}
        assert {r.json()["code"] for r in answers if r.status_code == 409} == {"session_not_awaiting_token"}
        wait_status(stack, s["id"], FINAL, 10)
        assert stack.status(s["id"]) == "succeeded"
        assert len(patches(stack.sandbox, first(body)["session"])) == 1


@dataclass
class ExpiryRace:
    """One session whose two submissions were fired around its expires_at, and how it ended."""

    expires_at: float
    answers: list[tuple[float, int]]  # (sent at, HTTP status) of each submission
    status: str
    outcome: str | None  # the outcome's code, for the failure message
    patches: list[dict]

    @property
    def accepted(self) -> int:
        return sum(code == 202 for _, code in self.answers)


def race_expiry(stack: Stack, offsets_ms: range) -> list[ExpiryRace]:
    """Per offset, a session open for 1 s and two submissions fired at expires_at + offset."""
    api, sb = stack.api, stack.sandbox
    sessions = []
    for offset_ms in offsets_ms:
        body = sb.pause(expiry=10)
        first(body)["expiry"] = 1  # Belvo's session outlives ours: only our own expiry decides
        sessions.append((api.created(body), first(body)["session"], offset_ms))

    def submit_at(s: dict, offset_ms: int) -> tuple[float, int]:
        time.sleep(max(0.0, epoch(s["expires_at"]) + offset_ms / 1000 - time.time()))  # the stimulus
        sent_at = time.time()
        return sent_at, api.submit(s["id"], credential=s["client_secret"]).status_code

    with ThreadPoolExecutor(2 * len(sessions)) as pool:
        pairs = [[pool.submit(submit_at, s, ms) for _ in "ab"] for s, _, ms in sessions]
        answers = [[f.result() for f in pair] for pair in pairs]
    races = []
    for (s, belvo, _), pair in zip(sessions, answers, strict=True):
        wait_status(stack, s["id"], FINAL, 10)
        status, code = stack.outcome(s["id"])
        races.append(ExpiryRace(epoch(s["expires_at"]), pair, status, code, patches(sb, belvo)))
    return races


# A 202 is resumed with one PATCH, or expires unsent when its job starts past expires_at (the README's
# Guarantees say so: Belvo's session is over by then, so no call is made).
ACCEPTED_ENDINGS = {("succeeded", None, 1), ("expired", "session_expired", 0)}


def test_submission_racing_expiry_has_one_outcome(stack):
    races = race_expiry(stack, range(-400, 81, 40))
    for race in races:
        assert race.accepted <= 1, race
        assert all(code != 202 for sent, code in race.answers if sent >= race.expires_at), race
        assert all(c["at"] <= race.expires_at + SEND_LATENCY for c in race.patches), "PATCH after expiry"
        ending = (race.status, race.outcome, len(race.patches))
        if race.accepted:
            assert ending in ACCEPTED_ENDINGS, race
        else:
            assert {code for _, code in race.answers} == {410}, race  # nothing else moved it on
            assert ending == ("expired", "session_expired", 0), race
    seen = Counter((r.accepted, r.status, len(r.patches)) for r in races)
    print(f"(202s, final status, PATCHes) -> sessions: {dict(seen)}")
    assert {won for won, _, _ in seen} == {0, 1}, "the race went both ways"


def test_cancel_racing_a_submission_has_one_winner(stack):
    api, sb = stack.api, stack.sandbox
    results = []
    for _ in range(ROUNDS):
        body = sb.pause()
        s = api.created(body)
        submit, cancel = fire(
            [
                partial(api.submit, s["id"], credential=s["client_secret"]),
                partial(api.cancel, s["id"], credential=s["client_secret"]),
            ]
        )
        submit_won, cancel_won = submit.status_code == 202, cancel.status_code == 200
        assert submit_won != cancel_won, (submit.text, cancel.text)
        loser = cancel if submit_won else submit
        assert loser.status_code == 409 and loser.json()["code"] == "session_not_awaiting_token"
        if cancel_won:
            assert cancel.json()["status"] == "cancelled"
        results.append((s["id"], first(body)["session"], submit_won))

    for sid, belvo, submit_won in results:
        wait_status(stack, sid, FINAL, 10)
        assert stack.status(sid) == ("succeeded" if submit_won else "cancelled")
        assert len(patches(sb, belvo)) == (1 if submit_won else 0)
    won = sum(submit_won for *_, submit_won in results)
    print(f"submission won {won} of {ROUNDS} rounds")
    assert 0 < won < ROUNDS, "the race went both ways"
