"""The widget inside another site's page: framed only by the origins WIDGET_FRAME_ANCESTORS lists, and
posting its end state to that origin alone."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

from tests.stack import Stack
from tests.system.browser.chromium import axe_violations, screenshot
from tests.system.browser.sites import Site

PARENT = """<!doctype html>
<html lang="en"><head><title>Checkout</title></head>
<body><main><h1>Checkout</h1>
<iframe id="mfa" title="Bank verification" src="%s" style="width:420px;height:640px;border:0"></iframe>
</main>
<script>
  window.received = [];
  window.addEventListener('message', (e) => window.received.push({origin: e.origin, data: e.data}));
</script></body></html>"""


def framed(site: Site, stack: Stack, session: dict[str, Any], path: str) -> str:
    src = f"{stack.web.url}/widget#session={session['id']}&secret={session['client_secret']}"
    return site.serve(path, PARENT % src)


def test_a_listed_origin_frames_the_widget_and_alone_hears_its_end(
    stack: Stack, page: Page, parent_site: Site
):
    session = stack.api.created(stack.sandbox.pause())
    page.goto(framed(parent_site, stack, session, "/checkout"))
    widget = page.frame_locator("#mfa")
    widget.get_by_label("Verification code").fill("111111")
    widget.get_by_role("button", name="Continue").click()
    expect(widget.locator("#view-done")).to_have_attribute("data-status", "succeeded")
    page.wait_for_function("() => window.received.length > 0")

    assert page.evaluate("window.received") == [
        {
            "origin": stack.web.url,
            "data": {
                "type": "belvo-mfa:done",
                "session": session["id"],
                "status": "succeeded",
                "step": 1,
                "outcome": {"http_status": 200, "code": None, "message": None},
            },
        }
    ]
    assert not axe_violations(page)  # the parent page with the framed widget
    screenshot(page, "framed-end-succeeded")


def test_an_unlisted_origin_cannot_frame_the_widget(
    stack: Stack, context: BrowserContext, stranger_site: Site
):
    session = stack.api.created(stack.sandbox.pause())
    page = context.new_page()  # not the `page` fixture: this page is meant to meet a CSP refusal
    with page.expect_console_message(lambda msg: "frame-ancestors" in msg.text) as refusal:
        page.goto(framed(stranger_site, stack, session, "/elsewhere"))
    assert "blocked" in refusal.value.text and stranger_site.origin not in refusal.value.text
    page.wait_for_function("() => document.readyState === 'complete'")

    frame = next(f for f in page.frames if f.parent_frame is not None)
    assert not frame.url.startswith(stack.web.url + "/widget")  # an error page instead
    assert page.evaluate("window.received") == []
    assert stack.api.get(session["id"]).json()["status"] == "awaiting_token"
