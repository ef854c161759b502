"""mfa-client.js in Chromium: imported by a frontend of another origin, following sessions of the running
service through whichever transport the service offers, submitting once per call, and its stream parser.

Where a test needs an answer the service does not give on demand (a stream that ends after one event, a
server that ignores `wait`, a lost answer), Playwright's request interception shapes that answer on the
wire; everything else is the real service.
"""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import Page, Request, Route

from tests.stack import Stack
from tests.support import first
from tests.system.browser.sites import Site

EVENTS = ("status", "challenge", "done", "transport", "error")

RECORD = """async ({base, id, secret, transport, pollIntervalMs}) => {
  const { MfaSession } = await import(`${base}/static/mfa-client.js`);
  window.events = [];
  const mfa = window.mfa = new MfaSession({ baseUrl: base, sessionId: id, clientSecret: secret,
                                            transport, pollIntervalMs });
  for (const type of %s) {
    mfa.addEventListener(type, (e) => window.events.push({
      type, status: e.detail.session ? e.detail.session.status : null,
      step: e.detail.session ? e.detail.session.step : null, transport: e.detail.transport || null,
      code: e.detail.error ? e.detail.error.code : null,
      http: e.detail.error ? e.detail.error.status : null }));
  }
  mfa.start();
}""" % json.dumps(EVENTS)  # noqa: UP031 - the JS braces would need doubling in an f-string


def harness(site: Site) -> str:
    """A page of another origin with nothing on it: the test imports the client into it."""
    return site.serve("/harness", "<!doctype html><html lang='en'><title>harness</title><main></main></html>")


def follow(
    page: Page, stack: Stack, session_id: str, secret: str, transport: str = "auto", poll_ms: int = 1000
):
    page.evaluate(
        RECORD,
        {
            "base": stack.web.url,
            "id": session_id,
            "secret": secret,
            "transport": transport,
            "pollIntervalMs": poll_ms,
        },
    )


def events(page: Page, type_: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate("window.events")
    return [e for e in found if type_ is None or e["type"] == type_]


def wait_event(page: Page, type_: str, timeout: float = 15_000) -> None:
    page.wait_for_function("(t) => window.events.some((e) => e.type === t)", arg=type_, timeout=timeout)


def created(stack: Stack, **pause: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    body = stack.sandbox.pause(**pause)
    return stack.api.created(body), first(body)


def test_a_frontend_of_another_origin_follows_a_session_and_answers_it(
    stack: Stack, page: Page, parent_site: Site
):
    session, pause = created(stack)
    page.goto(harness(parent_site))
    sent: list[Request] = []
    page.on("request", lambda r: sent.append(r))
    follow(page, stack, session["id"], session["client_secret"])
    wait_event(page, "challenge")
    # submit() resolves with the session as the client then knows it: the 202's `submitted`, or the end
    # if the stream brought it first (the sandbox answers the worker at once).
    answer = page.evaluate("window.mfa.submit('111111').then((s) => s.status)")
    assert answer in ("submitted", "succeeded")
    wait_event(page, "done")

    changes = [(e["type"], e["status"]) for e in events(page) if e["type"] in ("status", "challenge", "done")]
    assert changes == [
        ("status", "awaiting_token"),
        ("challenge", "awaiting_token"),
        ("status", "submitted"),
        ("status", "succeeded"),
        ("done", "succeeded"),
    ]
    transports = [e["transport"] for e in events(page, "transport")]
    assert transports == ["stream"]  # the service's own event stream, first choice, and it held
    posts = [r for r in sent if r.method == "POST" and r.url.endswith("/token")]
    assert len(posts) == 1
    assert re.fullmatch(r"[0-9a-f-]{36}", posts[0].headers["idempotency-key"])
    assert all(session["client_secret"] not in r.url for r in sent)
    assert len(stack.sandbox.calls(method="PATCH", session=pause["session"])) == 1
    at_done = len(sent)
    page.wait_for_timeout(1500)
    assert len(sent) == at_done  # following stopped at `done`: no request after it


def test_a_lost_answer_is_retried_with_the_same_idempotency_key_and_accepted_once(stack: Stack, page: Page):
    session, pause = created(stack)
    page.goto(f"{stack.web.url}/widget")  # a page of the service's own origin
    keys: list[str] = []
    replayed: list[str | None] = []

    def lose_the_first_answer(route: Route) -> None:
        keys.append(route.request.headers["idempotency-key"])
        response = route.fetch()  # the service gets the submission and accepts it ...
        if len(keys) == 1:
            route.abort("connectionreset")  # ... and its answer is lost on the way back
            return
        replayed.append(response.headers.get("idempotent-replayed"))
        route.fulfill(response=response)

    page.route("**/v1/sessions/*/token", lose_the_first_answer)
    follow(page, stack, session["id"], session["client_secret"], transport="poll")
    wait_event(page, "challenge")
    # The retry waits a backoff, in which polling may already have seen the end: submit() resolves
    # with the session as the client then knows it.
    assert page.evaluate("window.mfa.submit('111111').then((s) => s.status)") in ("submitted", "succeeded")
    wait_event(page, "done")

    assert len(keys) == 2 and keys[0] == keys[1]
    assert replayed == ["true"]  # the retry got the first answer back, not a second submission
    assert [e["status"] for e in events(page, "done")] == ["succeeded"]
    assert len(stack.sandbox.calls(method="PATCH", session=pause["session"])) == 1


def sse(*sessions: dict[str, Any], retry_ms: int | None = None) -> str:
    lines = [": heartbeat", ""]
    if retry_ms is not None:
        lines += [f"retry: {retry_ms}", ""]
    for s in sessions:
        lines += [f"id: {s['version']}", f"data: {json.dumps(s)}", ""]
    return "\n".join(lines) + "\n"


def test_the_event_stream_contract_is_followed_and_resumed_with_last_event_id(stack: Stack, page: Page):
    session, _ = created(stack)
    base = {k: v for k, v in stack.api.get(session["id"]).json().items()}
    submitted = {**base, "status": "submitted", "version": 2, "updated_at": "2999-01-01T00:00:00.000Z"}
    succeeded = {**submitted, "status": "succeeded", "version": 3}
    asked: list[str | None] = []

    def stream(route: Route) -> None:
        asked.append(route.request.headers.get("last-event-id"))
        body = sse(submitted, retry_ms=50) if len(asked) == 1 else sse(succeeded)
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    page.goto(f"{stack.web.url}/widget")
    page.route("**/v1/sessions/*/stream", stream)
    follow(page, stack, session["id"], session["client_secret"], transport="stream")
    wait_event(page, "done")

    assert [(e["type"], e["status"]) for e in events(page) if e["type"] in ("status", "done")] == [
        ("status", "awaiting_token"),
        ("status", "submitted"),
        ("status", "succeeded"),
        ("done", "succeeded"),
    ]
    first_ask = str(base["version"]) if "version" in base else None
    assert asked == [first_ask, "2"]  # the second connection resumed after the last event it saw
    assert [e["transport"] for e in events(page, "transport")] == ["stream"]


def test_a_server_that_ignores_wait_is_polled_at_the_poll_interval_not_hammered(stack: Stack, page: Page):
    session, _ = created(stack)
    reads: list[str] = []

    def without_long_poll(route: Route) -> None:  # answers at once, as a server that ignores `wait`
        reads.append(route.request.url)
        response = route.fetch(url=route.request.url.split("?")[0])  # the service never sees `wait`
        route.fulfill(response=response, json={**response.json(), "version": 1})

    page.goto(f"{stack.web.url}/widget")
    page.route(re.compile(r".*/v1/sessions/[^/?]+(\?.*)?$"), without_long_poll)
    follow(page, stack, session["id"], session["client_secret"], transport="long-poll", poll_ms=500)
    page.wait_for_function("() => window.mfa.transport === 'poll'")
    page.wait_for_timeout(2000)
    page.evaluate("window.mfa.close()")

    assert any("wait=25&after=1" in url for url in reads)  # it did ask to long-poll
    assert len(reads) <= 8, reads  # 2 s at one read per 500 ms, plus the first read and the long-poll
    assert [e["transport"] for e in events(page, "transport")] == ["long-poll", "poll"]


def test_a_secret_that_does_not_open_the_session_stops_following_with_an_error(
    stack: Stack, page: Page, parent_site: Site
):
    session, _ = created(stack)
    page.goto(harness(parent_site))
    sent: list[Request] = []
    api = f"{stack.web.url}/v1/"
    page.on("request", lambda r: sent.append(r) if r.url.startswith(api) else None)
    follow(page, stack, session["id"], "mcs_wrong")
    wait_event(page, "error")
    page.wait_for_timeout(1500)

    assert [(e["http"], e["code"]) for e in events(page, "error")] == [(404, "session_not_found")]
    assert len([r for r in sent if r.method == "GET"]) == 1  # no retries of a credential that cannot work


PARSE = """async ({base, text}) => {
  const { EventStreamParser } = await import(`${base}/static/mfa-client.js`);
  const run = (chunks) => {
    const seen = [];
    const parser = new EventStreamParser((e) => seen.push(e));
    for (const chunk of chunks) parser.push(chunk);
    return { seen, retry: parser.retry };
  };
  const whole = run([text]);
  const splits = [];
  for (let i = 0; i <= text.length; i += 1) splits.push(run([text.slice(0, i), text.slice(i)]));
  splits.push(run(Array.from(text)));
  return { whole, splits };
}"""


def test_the_stream_parser_reads_the_same_events_however_the_text_is_split(stack: Stack, page: Page):
    text = (
        ': heartbeat\r\n\r\nretry: 2500\nid: 7\ndata: {"a": 1}\n\n'
        "event: status\r\ndata: line one\r\ndata: line two\r\n\r\n"
        "data:no space\rid: 9\r\r: a comment\ndata: unfinished"
    )
    page.goto(f"{stack.web.url}/widget")
    result = page.evaluate(PARSE, {"base": stack.web.url, "text": text})

    expected = [
        {"event": "message", "data": '{"a": 1}', "id": "7"},
        {"event": "status", "data": "line one\nline two", "id": "7"},
        {"event": "message", "data": "no space", "id": "9"},
    ]
    assert result["whole"] == {"seen": expected, "retry": 2500}
    assert all(split == result["whole"] for split in result["splits"])


def test_the_services_own_stream_carries_the_session_to_its_end(stack: Stack, page: Page, parent_site: Site):
    session, _ = created(stack)
    page.goto(harness(parent_site))
    follow(page, stack, session["id"], session["client_secret"], transport="stream")
    wait_event(page, "challenge")
    # submit() resolves with the session as the client then knows it: the 202's `submitted`, or what the
    # stream brought first (the next step, the end), since the worker resumes at once.
    first = page.evaluate("window.mfa.submit('999999').then((s) => [s.status, s.step])")
    assert first in (["submitted", 1], ["awaiting_token", 2])
    page.wait_for_function("() => window.events.filter((e) => e.type === 'challenge').length === 2")
    assert page.evaluate("window.mfa.submit('111111').then((s) => s.status)") in ("submitted", "succeeded")
    wait_event(page, "done")

    assert [e["step"] for e in events(page, "challenge")] == [1, 2]
    assert [e["status"] for e in events(page, "done")] == ["succeeded"]
    assert [e["transport"] for e in events(page, "transport")] == ["stream"]


def test_the_services_long_poll_answers_on_the_change(stack: Stack, page: Page, parent_site: Site):
    session, _ = created(stack)
    page.goto(harness(parent_site))
    follow(page, stack, session["id"], session["client_secret"], transport="long-poll")
    wait_event(page, "challenge")
    page.wait_for_timeout(3000)  # a held long-poll: nothing changes, and the client does not fall back
    assert page.evaluate("window.mfa.transport") == "long-poll"
    stack.api.submit(session["id"], "111111")
    wait_event(page, "done")
    assert [e["status"] for e in events(page, "done")] == ["succeeded"]
    assert [e["transport"] for e in events(page, "transport")] == ["long-poll"]
