"""A real browser (headless Chromium, driven by Playwright) that opens dashboard tabs and closes them.

Used by notebook 07 to demonstrate what a learner does by hand, and by the browser tests. Playwright's
synchronous API refuses to run where an asyncio loop is running (a notebook cell), so every browser
session here runs on a thread of its own. Chromium is Debian's (``/usr/bin/chromium``): nothing is
downloaded.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
from dataclasses import dataclass

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("LAB_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def unavailable_reason() -> str | None:
    """Why no browser can be driven here, or None when one can."""
    if chromium_path() is None:
        return "Chromium is not installed (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    return None


@dataclass(frozen=True)
class TabsReport:
    tabs: int
    updates_seen: list[int]
    """Metric updates each tab had rendered when it was closed."""


def open_and_close_tabs(url: str, tabs: int = 3, updates: int = 3, timeout: float = 15.0,
                        screenshot: str | None = None) -> TabsReport:
    """Open ``tabs`` tabs on the dashboard, wait until each shows ``updates`` updates, close them all."""

    def drive() -> TabsReport:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                pages = [browser.new_page() for _ in range(tabs)]
                for page in pages:
                    page.goto(url, timeout=timeout * 1000)
                for page in pages:
                    page.wait_for_function(
                        f"Number(document.getElementById('count').textContent) >= {updates}", timeout=timeout * 1000
                    )
                if screenshot:
                    pages[0].screenshot(path=screenshot)
                seen = [int(page.inner_text("#count")) for page in pages]
                for page in pages:
                    page.close()
                return TabsReport(tabs, seen)
            finally:
                browser.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(drive).result(timeout + 30)
