"""A real browser (headless Chromium, driven by Playwright) that opens dashboard tabs and closes them.

Used by notebook 08 to demonstrate what a learner does by hand, and by the browser tests. Playwright's
synchronous API refuses to run where an asyncio loop is running (a notebook cell), so every browser
session here runs on a thread of its own. Chromium is Debian's (``/usr/bin/chromium``): nothing is
downloaded.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from helpers.errors import LabError

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
    """What a real browser saw: how many dashboard tabs it opened, and what each had rendered."""

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

    return call_with_timeout(drive, timeout + 30)


T = TypeVar("T")


def call_with_timeout(work: Callable[[], T], timeout: float) -> T:
    """Run ``work`` on a thread of its own and return its result, or raise LabError after ``timeout`` seconds.

    The thread is left to finish on its own (a thread cannot be killed): leaving a ``with
    ThreadPoolExecutor`` block would wait for it, which is exactly what a timeout must not do."""
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lab-browser")
    try:
        return pool.submit(work).result(timeout)
    except concurrent.futures.TimeoutError:
        raise LabError(f"The browser did not finish within {timeout:.0f} s.") from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
