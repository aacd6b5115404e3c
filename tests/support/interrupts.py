"""What a learner's interrupt button does to a server that is starting, and an app slow enough to be caught."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from types import FrameType

from fastapi import FastAPI

SLOW_START = 1.5


@contextlib.asynccontextmanager
async def slow_lifespan(app: FastAPI) -> AsyncIterator[None]:
    await asyncio.sleep(SLOW_START)
    yield


slow_app = FastAPI(lifespan=slow_lifespan)
"""An app whose startup takes ``SLOW_START`` seconds: time for an interrupt to arrive mid-start."""


def lab_server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lab-server-")]


@contextlib.contextmanager
def keyboard_interrupt_after(seconds: float) -> Iterator[None]:
    """What the kernel's interrupt button does: a KeyboardInterrupt in the main thread, mid-call."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
