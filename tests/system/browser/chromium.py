"""The browser the frontend tests drive: Debian's Chromium through Playwright, and what they check in it.

Playwright's own browser downloads cannot reach the network here or in CI, so the system Chromium is
launched (`.ci/run` installs Debian's `chromium` when it is missing). `launch()` gives it a fresh,
empty user-data directory of its own, removed when the browser closes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, Playwright

ROOT = Path(__file__).resolve().parents[3]
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
# Screenshots of the widget's states, kept after the run for a person to look at (var/ is gitignored).
ARTEFACTS = ROOT / "var" / "test-artefacts" / "browser"

# The machines have no outside network: nothing in the browser may try to reach one.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# What axe-core checks: WCAG 2.1 A and AA, and its best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def chromium_path() -> str:
    """The Chromium to launch: $CHROMIUM, else Debian's; an AssertionError says how to install it."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is missing: `apt-get install chromium` (Debian), or set CHROMIUM to its path"
    return found


def launch(playwright: Playwright) -> Browser:
    """Headless Chromium with a fresh profile and no background traffic."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict[str, Any]]:
    """axe-core's violations of `impacts` on the page as it is now (evaluated through the DevTools
    protocol, so the page's own Content-Security-Policy is untouched)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    found = page.evaluate(
        """async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}})).violations
            .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                          nodes: v.nodes.map((n) => n.target.join(' '))}))""",
        AXE_TAGS,
    )
    return [v for v in found if v["impact"] in impacts]


def screenshot(page: Page, name: str) -> Path:
    """Save the page as var/test-artefacts/browser/<name>.png; the path is returned."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
