from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator

import pytest

from helpers import browser, clients
from helpers.server import stop_current
from helpers.waiting import wait_until


@pytest.fixture(autouse=True)
def release_lab_resources() -> Iterator[None]:
    """Every test starts and ends with no lab server and no lab client."""
    yield
    clients.close_all()
    stop_current()


def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    return wait_until(condition, timeout, interval=0.01) is not None


@functools.cache
def lab_session():  # type: ignore[no-untyped-def]
    """The test session's JupyterLab in Chromium, started on first use."""
    from tests.jupyterlab_session import JupyterLabSession

    return JupyterLabSession()


@pytest.fixture(scope="session", autouse=True)
def close_lab_session() -> Iterator[None]:
    yield
    if lab_session.cache_info().currsize:
        lab_session().close()


def require_browser() -> None:
    """Skip without a browser, except in CI, where its absence is a failure."""
    reason = browser.unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests, but {reason}.")
    pytest.skip(f"No browser tests here: {reason}.")
