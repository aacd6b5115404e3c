from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from helpers import clients
from helpers.server import stop_current


@pytest.fixture(autouse=True)
def release_lab_resources() -> Iterator[None]:
    """Every test starts and ends with no lab server and no lab client."""
    yield
    clients.close_all()
    stop_current()


def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
