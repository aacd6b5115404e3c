"""The test session's one JupyterLab in Chromium, and the rule for tests that need a browser."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

import pytest

from helpers import browser

if TYPE_CHECKING:
    from tests.support.jupyterlab_session import JupyterLabSession


@functools.cache
def lab_session() -> JupyterLabSession:
    """The test session's JupyterLab in Chromium, started on first use (``conftest.py`` closes it at the end)."""
    from tests.support.jupyterlab_session import JupyterLabSession

    return JupyterLabSession()


def require_browser() -> None:
    """Skip without a browser, except in CI, where its absence is a failure."""
    reason = browser.unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests, but {reason}.")
    pytest.skip(f"No browser tests here: {reason}.")
