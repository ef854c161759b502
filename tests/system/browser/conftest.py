"""Fixtures of the browser tests: one stack of real processes (gunicorn, `python -m worker`, Redis, the
sandbox) for the whole folder, Debian's Chromium driven by Playwright, and pages of other origins.

Two other sites run on loopback, each on a port of its own, so each is an origin of its own
(`http://localhost:<port>`; the service is `http://127.0.0.1:<port>`): `parent_site` is listed in
WIDGET_FRAME_ANCESTORS and CORS_ORIGINS, `stranger_site` is not.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from tests.stack import Stack, build_stack
from tests.system.browser.chromium import launch
from tests.system.browser.sites import Site


@pytest.fixture(scope="package")
def parent_site() -> Iterator[Site]:
    site = Site()
    yield site
    site.close()


@pytest.fixture(scope="package")
def stranger_site() -> Iterator[Site]:
    site = Site()
    yield site
    site.close()


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory, parent_site: Site) -> Iterator[Stack]:
    """The service as deployed (gunicorn + one worker), with the widget framable by `parent_site`,
    the API open to it by CORS, and the dev demo on."""
    env = {
        "WIDGET_FRAME_ANCESTORS": parent_site.origin,
        "CORS_ORIGINS": parent_site.origin,
        "DEMO_PAGE": "true",
    }
    with build_stack(tmp_path_factory.mktemp("browser"), env, workers=1) as st:
        yield st


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (no cookies, storage or cache shared with another test), in English."""
    ctx = browser.new_context(locale="en-US", viewport={"width": 800, "height": 900})
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


class PageErrors:
    """Uncaught script errors and Content-Security-Policy refusals seen on a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("console", self._console)

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error" and "Content Security Policy" in msg.text:
            self.errors.append(f"CSP: {msg.text}")


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page of the test's context; the test fails if a script threw or the page's CSP refused anything."""
    pg = context.new_page()
    seen = PageErrors(pg)
    yield pg
    assert not seen.errors, seen.errors
