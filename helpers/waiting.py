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


def wait_while_moving(condition: Callable[[], bool], progress: Callable[[], object], stall: float,
                      longest: float = 120.0, interval: float = 0.05) -> float | None:
    """Seconds until ``condition()`` held, or None once ``progress()`` has not changed for ``stall`` seconds (or
    ``longest`` have passed): for a wait whose pace is the machine's, such as clients reading megabytes on a
    loaded host, where a fixed deadline would call slow progress a failure."""
    started = time.monotonic()
    last, changed = progress(), started
    while True:
        if condition():
            return time.monotonic() - started
        now = time.monotonic()
        if now - changed >= stall or now - started >= longest:
            return None
        time.sleep(interval)
        reading = progress()
        if reading != last:
            last, changed = reading, time.monotonic()
