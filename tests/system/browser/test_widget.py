"""The MFA widget (/widget) in Chromium against the running service, worker and sandbox: each kind of
challenge, each end state, keyboard-only use, each language, a phone's screen, and axe-core's check.

Screenshots of every end state are saved to var/test-artefacts/browser/.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.stack import Stack
from tests.support import first
from tests.system.browser.chromium import axe_violations, screenshot

TITLE = "#title"
DONE = "#view-done"


def start(stack: Stack, **pause: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A session created from a fresh sandbox pause: the API's answer (with client_secret) and the pause."""
    body = stack.sandbox.pause(**pause)
    return stack.api.created(body), first(body)


def widget_url(stack: Stack, session: dict[str, Any], lang: str | None = None) -> str:
    fragment = f"session={session['id']}&secret={session['client_secret']}"
    return f"{stack.web.url}/widget#{fragment}" + (f"&lang={lang}" if lang else "")


def open_widget(page: Page, stack: Stack, session: dict[str, Any], lang: str | None = None) -> None:
    page.goto(widget_url(stack, session, lang))
    expect(page.locator("#view-challenge")).to_be_visible()


def assert_accessible(page: Page) -> None:
    violations = axe_violations(page)
    assert not violations, violations


def api_status(stack: Stack, session_id: str) -> str:
    return stack.api.get(session_id).json()["status"]


def resumes(stack: Stack, pause: dict[str, Any]) -> list[dict[str, Any]]:
    return stack.sandbox.calls(method="PATCH", session=pause["session"])


def test_a_numeric_code_succeeds(stack: Stack, page: Page):
    session, pause = start(stack)
    open_widget(page, stack, session)
    code = page.get_by_label("Verification code")
    expect(code).to_have_attribute("inputmode", "numeric")
    expect(code).to_have_attribute("autocomplete", "one-time-code")
    expect(page.locator("#instructions")).to_have_text(pause["token_generation_data"]["instructions"])
    value = pause["token_generation_data"]["value"]  # the sandbox's numeric challenge carries a code
    assert value
    expect(page.locator("#challenge-value")).to_have_text(f"The code from your bank: {value}")
    expect(page.locator("#countdown")).to_be_visible()
    assert "#secret" not in page.url and session["client_secret"] not in page.url  # dropped from the address
    assert_accessible(page)
    screenshot(page, "challenge-numeric")

    code.fill("111111")
    page.get_by_role("button", name="Continue").click()

    expect(page.locator(DONE)).to_have_attribute("data-status", "succeeded")
    expect(page.locator(TITLE)).to_have_text("Verified")
    expect(page.locator(TITLE)).to_be_focused()
    expect(page.get_by_role("status")).to_contain_text("Verified")
    assert api_status(stack, session["id"]) == "succeeded"
    assert [call["token"] for call in resumes(stack, pause)] == ["111111"]
    assert_accessible(page)
    screenshot(page, "end-succeeded")


def test_a_chained_second_step_is_asked_for_and_completed(stack: Stack, page: Page):
    session, pause = start(stack)
    open_widget(page, stack, session)
    page.get_by_label("Verification code").fill("999999")
    page.get_by_role("button", name="Continue").click()

    expect(page.locator("#step")).to_have_text("Step 2")
    code = page.get_by_label("Verification code")
    expect(code).to_have_value("")
    expect(code).to_be_focused()
    expect(page.get_by_role("status")).to_contain_text("Your bank asks for another code.")
    screenshot(page, "challenge-step-2")
    code.fill("111111")
    page.get_by_role("button", name="Continue").click()

    expect(page.locator(DONE)).to_have_attribute("data-status", "succeeded")
    body = stack.api.get(session["id"]).json()
    assert (body["status"], body["step"]) == ("succeeded", 2)
    assert [call["token"] for call in resumes(stack, pause)] == ["999999"]  # step 2 has a session of its own


def test_a_wrong_token_ends_in_failure_with_the_banks_message(stack: Stack, page: Page):
    session, _ = start(stack)
    open_widget(page, stack, session)
    page.get_by_label("Verification code").fill("123456")
    page.get_by_role("button", name="Continue").click()

    expect(page.locator(DONE)).to_have_attribute("data-status", "failed")
    expect(page.locator(TITLE)).to_have_text("Verification failed")
    expect(page.locator("#done-text")).to_have_text("The code was not accepted.")
    outcome = stack.api.get(session["id"]).json()["outcome"]
    assert outcome["code"] == "invalid_token" and outcome["message"]
    expect(page.locator("#done-detail")).to_have_text(f"Your bank said: “{outcome['message']}”")
    assert_accessible(page)
    screenshot(page, "end-failed")


def test_expiry_is_counted_down_and_shown(stack: Stack, page: Page):
    session, pause = start(stack, expiry=6)
    open_widget(page, stack, session)
    expect(page.locator("#countdown-time")).to_have_text(re.compile(r"^0:0[0-6]$"))
    expect(page.locator("#countdown")).to_have_class(re.compile(r"\burgent\b"))

    expect(page.locator(DONE)).to_have_attribute("data-status", "expired", timeout=15_000)
    expect(page.locator(TITLE)).to_have_text("Time’s up")  # noqa: RUF001 - the widget's typographic apostrophe
    assert api_status(stack, session["id"]) == "expired"
    assert resumes(stack, pause) == []
    assert_accessible(page)
    screenshot(page, "end-expired")


def decoded_qr(png: bytes) -> list[str]:
    return [found.text for found in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def test_a_qr_code_is_drawn_from_the_challenge_value_and_decodes_to_it(stack: Stack, page: Page):
    session, pause = start(stack, token_type="qr_code")
    value = pause["token_generation_data"]["value"]
    open_widget(page, stack, session)
    qr = page.get_by_role("img", name="QR code to scan with your bank’s app")  # noqa: RUF001 - the widget's typographic apostrophe
    expect(qr).to_be_visible()
    assert decoded_qr(qr.screenshot()) == [value]
    assert_accessible(page)
    screenshot(page, "challenge-qr-code")

    page.get_by_label("Verification code").fill("111111")
    page.keyboard.press("Enter")
    expect(page.locator(DONE)).to_have_attribute("data-status", "succeeded")


def test_a_challenge_without_input_asks_for_approval_and_resumes_without_a_token(stack: Stack, page: Page):
    session, pause = start(stack, token_type="approval")
    open_widget(page, stack, session)
    expect(page.locator("#token-field")).to_be_hidden()
    expect(page.locator("#approval")).to_have_text(
        "Approve the request in your bank’s app, then press Continue."  # noqa: RUF001 - the widget's typographic apostrophe
    )
    expect(page.get_by_role("button", name="Continue")).to_be_focused()
    assert_accessible(page)
    screenshot(page, "challenge-approval")
    page.get_by_role("button", name="Continue").click()

    expect(page.locator(DONE)).to_have_attribute("data-status", "succeeded")
    assert [call["has_token"] for call in resumes(stack, pause)] == [False]


def test_cancel_ends_the_session_without_a_call_to_belvo(stack: Stack, page: Page):
    session, pause = start(stack)
    open_widget(page, stack, session)
    page.get_by_role("button", name="Cancel").click()

    expect(page.locator(DONE)).to_have_attribute("data-status", "cancelled")
    expect(page.locator(TITLE)).to_have_text("Cancelled")
    assert api_status(stack, session["id"]) == "cancelled"
    assert resumes(stack, pause) == []
    assert_accessible(page)
    screenshot(page, "end-cancelled")


def test_the_keyboard_alone_completes_a_chained_verification(stack: Stack, page: Page):
    session, _ = start(stack)
    open_widget(page, stack, session)
    focused = "document.activeElement.id"
    assert page.evaluate(focused) == "token"  # the code field has focus as soon as it is asked for
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "submit"
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "cancel"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(focused) == "token"

    page.keyboard.press("Enter")  # nothing typed yet: the field says what is missing, and keeps focus
    expect(page.locator("#token-error")).to_have_text("Enter the code.")
    expect(page.locator("#token")).to_have_attribute("aria-invalid", "true")
    page.keyboard.type("999999")
    page.keyboard.press("Enter")
    expect(page.locator("#step")).to_have_text("Step 2")
    expect(page.locator("#token")).to_be_focused()
    page.keyboard.type("111111")
    page.keyboard.press("Enter")

    expect(page.locator(DONE)).to_have_attribute("data-status", "succeeded")
    expect(page.locator(TITLE)).to_be_focused()


LANGUAGES = [
    # browser locale, lang in the URL, the language shown, its title for the challenge, its button
    ("es-MX", None, "es", "Confirma que eres tú", "Continuar"),
    ("pt-BR", None, "pt", "Confirme que é você", "Continuar"),
    ("en-US", None, "en", "Verify it’s you", "Continue"),  # noqa: RUF001 - the widget's typographic apostrophe
    ("es-CO", "pt", "pt", "Confirme que é você", "Continuar"),
    ("fr-FR", None, "en", "Verify it’s you", "Continue"),  # noqa: RUF001 - the widget's typographic apostrophe
]


@pytest.mark.parametrize(("locale", "lang", "shown", "title", "button"), LANGUAGES)
def test_the_language_follows_the_parameter_or_the_browser(
    stack: Stack, browser: Browser, locale: str, lang: str | None, shown: str, title: str, button: str
):
    context = browser.new_context(locale=locale)
    try:
        page = context.new_page()
        session, _ = start(stack)
        open_widget(page, stack, session, lang)
        assert page.evaluate("document.documentElement.lang") == shown
        expect(page.locator(TITLE)).to_have_text(title)
        expect(page.locator("#submit")).to_have_text(button)
        page.locator("#cancel").click()
        expect(page.locator(DONE)).to_have_attribute("data-status", "cancelled")
        screenshot(page, f"end-cancelled-{shown}-{locale}")
    finally:
        context.close()


PHONE_WIDTH = 320  # CSS pixels: the narrowest phones still in use


def test_a_phone_sized_screen_fits_the_widget_without_sideways_scrolling(stack: Stack, browser: Browser):
    context = browser.new_context(
        locale="es-MX",
        viewport={"width": PHONE_WIDTH, "height": 568},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    try:
        page = context.new_page()
        session, _ = start(stack, token_type="qr_code")
        open_widget(page, stack, session)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        for control in ("#token", "#submit", "#cancel", "#qr svg"):
            box = page.locator(control).bounding_box()
            assert box is not None, control
            assert 0 <= box["x"] and box["x"] + box["width"] <= PHONE_WIDTH, (control, box)
            if control != "#qr svg":
                assert box["height"] >= 44, (control, box)  # a finger's target
        assert_accessible(page)
        screenshot(page, "phone-challenge-qr-code")
        page.locator("#token").tap()
        page.keyboard.type("111111")
        page.locator("#submit").tap()
        expect(page.locator(DONE)).to_have_attribute("data-status", "succeeded")
        screenshot(page, "phone-end-succeeded")
    finally:
        context.close()


def test_a_link_without_a_working_secret_says_so(stack: Stack, page: Page):
    session, _ = start(stack)
    page.goto(f"{stack.web.url}/widget#session={session['id']}&secret=mcs_not-the-secret")
    expect(page.locator(DONE)).to_have_attribute("data-status", "invalid")
    expect(page.locator(TITLE)).to_have_text("This link can’t be used")  # noqa: RUF001 - the widget's typographic apostrophe
    page.goto(f"{stack.web.url}/widget")
    expect(page.locator(DONE)).to_have_attribute("data-status", "invalid")
    assert api_status(stack, session["id"]) == "awaiting_token"


def test_the_secret_in_the_fragment_reaches_no_server_log_and_no_referer(stack: Stack, page: Page):
    session, _ = start(stack)
    secret = session["client_secret"]
    sent: list[tuple[str, dict[str, str]]] = []
    page.on("request", lambda request: sent.append((request.url, request.headers)))
    open_widget(page, stack, session)
    page.get_by_label("Verification code").fill("111111")
    page.keyboard.press("Enter")
    expect(page.locator(DONE)).to_have_attribute("data-status", "succeeded")

    assert sent
    for url, headers in sent:
        assert secret not in url, url
        assert secret not in headers.get("referer", ""), url
        outside_authorization = {k: v for k, v in headers.items() if k != "authorization"}
        assert secret not in str(outside_authorization), url
    logs = "".join(Path(log).read_text() for log in stack.logs.glob("*.log"))
    assert f"/v1/sessions/{session['id']}" in logs  # the reads were logged ...
    assert secret not in logs  # ... and the secret with none of them
