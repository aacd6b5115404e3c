"""Waiting, in a test, for something the lab does on another thread or process."""

from __future__ import annotations

from collections.abc import Callable

from helpers.waiting import wait_until


def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Whether ``condition`` holds within ``timeout`` seconds, polled every 10 ms."""
    return wait_until(condition, timeout, interval=0.01) is not None
