"""Polling with a deadline: for a condition, or for a reading that has stopped changing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> float | None:
    """Seconds until ``condition()`` held, or None if it did not within ``timeout``."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() - started >= timeout:
            return None
        time.sleep(interval)


def settled(read: Callable[[], T], settle: float, longest: float = 5.0) -> T:
    """``read()`` once it returned the same twice, ``settle / 2`` apart, after waiting ``settle`` first; at most
    ``longest`` seconds more, then the latest reading."""
    time.sleep(settle)
    deadline = time.monotonic() + longest
    before = read()
    while True:
        time.sleep(settle / 2)
        now = read()
        if now == before or time.monotonic() > deadline:
            return now
        before = now
