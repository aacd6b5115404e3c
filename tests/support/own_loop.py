"""Run a coroutine from a test, whatever the test process's main thread holds."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a loop of its own, on a thread of its own: the browser tests' Playwright keeps an event
    loop marked as running on the main thread of the test worker, where ``asyncio.run()`` would refuse."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
