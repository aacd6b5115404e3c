"""The fast tier's rule: a test marked ``fast`` starts no process and listens on no socket.

``conftest.py`` applies it while every fast-marked test is set up (its fixtures too, session-wide ones included) and
runs, so a fast test that would start a server, a browser, a kernel, nginx or Redis fails at once, by name, instead
of slowing the tier down. The tier: ``python3 -m helpers test --fast``.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import pytest

MARK = "fast"


def _refuse(what: str) -> Callable[..., NoReturn]:
    def refused(*args: Any, **kwargs: Any) -> NoReturn:
        pytest.fail(f"a test marked {MARK} {what}: fast tests start no process and no server "
                    "(drop the mark, or move the part that needs one to a slower test)")

    return refused


def forbid_processes_and_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until the test ends, starting a process (subprocess, asyncio's subprocesses, fork, spawn) or binding a socket
    (every server listens on one) fails the test."""
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refuse("started a process"))
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, _refuse("started a process"))
    monkeypatch.setattr(socket.socket, "bind", _refuse("bound a socket (a server listens on one)"))


@contextmanager
def guarded(item: pytest.Item) -> Iterator[None]:
    """Within the block, ``forbid_processes_and_servers`` if ``item`` is marked fast."""
    if item.get_closest_marker(MARK) is None:
        yield
        return
    monkeypatch = pytest.MonkeyPatch()
    forbid_processes_and_servers(monkeypatch)
    try:
        yield
    finally:
        monkeypatch.undo()
