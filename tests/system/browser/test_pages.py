"""The service's other pages in Chromium: /docs (the OpenAPI document in vendored Swagger UI) and the
`make dev` demo at / (DEMO_PAGE=true), which plays a backend without handing the browser its API key."""

from __future__ import annotations

from playwright.sync_api import Page, Response, expect

from tests.stack import Stack
from tests.support import API_KEY
from tests.system.browser.chromium import axe_violations, screenshot


def test_docs_renders_the_services_openapi_document_from_the_service_alone(stack: Stack, page: Page):
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{stack.web.url}/docs")

    expect(page.get_by_role("heading", name="Belvo MFA session service")).to_be_visible()
    for path in ("/v1/sessions", "/v1/sessions/{session_id}/token", "/v1/links"):
        expect(page.locator(".opblock-summary-path", has_text=path).first).to_be_visible()
    page.locator(".opblock-summary-path", has_text="/v1/sessions/{session_id}/token").first.click()
    expect(page.get_by_text("Idempotency-Key").first).to_be_visible()
    assert asked and all(url.startswith(stack.web.url + "/") for url in asked), asked  # no CDN
    screenshot(page, "docs")


def test_the_demo_runs_a_verification_without_the_api_key_reaching_the_browser(stack: Stack, page: Page):
    answers: list[Response] = []
    page.on("response", lambda response: answers.append(response))
    page.goto(f"{stack.web.url}/")
    assert not axe_violations(page)
    page.get_by_label("A code sent by SMS (numeric)").check()
    page.get_by_role("button", name="Start a verification").click()

    widget = page.frame_locator("#widget")
    widget.get_by_label("Verification code").fill("111111")  # the worker has registered the link by now
    widget.get_by_role("button", name="Continue").click()
    expect(widget.locator("#view-done")).to_have_attribute("data-status", "succeeded")
    expect(page.get_by_role("log")).to_contain_text("belvo-mfa:done: succeeded")
    screenshot(page, "demo-end-succeeded")

    assert "/demo/sessions" in "".join(r.url for r in answers)
    for answer in answers:
        headers = answer.all_headers()
        assert API_KEY not in str(headers), answer.url
        if answer.request.method != "OPTIONS" and "text/event-stream" not in headers.get("content-type", ""):
            assert API_KEY not in answer.text(), answer.url  # an open event stream has no body to read yet
