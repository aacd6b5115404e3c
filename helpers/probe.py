"""Counting what is alive on the server: handler coroutines, tasks, connections, file descriptors.

A handler is "alive" while its coroutine is anywhere in a task's await chain. The probe
walks each task's chain (``cr_await`` / ``gi_yieldfrom``) looking for the code object of
the functions it watches, so it finds the endpoint however many layers (FastAPI, Starlette,
uvicorn) sit above it, and it also finds a watched function running in a task of its own.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import CodeType
from typing import Any

import psutil

from helpers.server import LabServer

MAX_DEPTH = 200
IN_LOOP_TIMEOUT = 0.1


def _chain_codes(coro: Any) -> list[CodeType]:
    codes: list[CodeType] = []
    for _ in range(MAX_DEPTH):
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None) or getattr(coro, "ag_code", None)
        if code is None:
            break
        codes.append(code)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
        if coro is None:
            break
    return codes


@dataclass(frozen=True)
class Sample:
    t: float
    alive: Mapping[str, int]
    """Live coroutines of each watched function."""
    gauges: Mapping[str, float]
    """Values of the experiment's own gauges, e.g. the size of a registry of subscribers."""
    extra_tasks: int
    connections: int
    fds: int


class Probe:
    def __init__(
        self,
        server: LabServer,
        watch: Mapping[str, Callable[..., Any]] | Callable[..., Any],
        gauges: Mapping[str, Callable[[], float]] | None = None,
    ) -> None:
        self.gauges = dict(gauges or {})
        if callable(watch):
            watch = {watch.__name__: watch}
        self.server = server
        self.codes: dict[str, CodeType] = {name: _code_of(fn) for name, fn in watch.items()}
        self._process = psutil.Process()

    def alive(self) -> dict[str, int]:
        """Counted on the server's loop between two steps, where every coroutine is suspended and
        its await chain complete; read from this thread instead if the loop does not answer in time
        (a handler that blocks the loop)."""
        if self.server.running:
            answer: concurrent.futures.Future[dict[str, int]] = concurrent.futures.Future()

            def count_there() -> None:
                if not answer.done():
                    answer.set_result(self._count())

            try:
                self.server.loop.call_soon_threadsafe(count_there)
                return answer.result(IN_LOOP_TIMEOUT)
            except (RuntimeError, concurrent.futures.TimeoutError):
                answer.cancel()
        return self._count()

    def _count(self) -> dict[str, int]:
        counts = dict.fromkeys(self.codes, 0)
        wanted = {code: name for name, code in self.codes.items()}
        for task in self.server.tasks():
            for code in _chain_codes(task.get_coro()):
                name = wanted.get(code)
                if name is not None:
                    counts[name] += 1
        return counts

    def sample(self, t0: float = 0.0) -> Sample:
        return Sample(
            t=time.monotonic() - t0,
            alive=self.alive(),
            gauges={name: read() for name, read in self.gauges.items()},
            extra_tasks=self.server.extra_tasks(),
            connections=self.server.connections(),
            fds=self._process.num_fds(),
        )


def _code_of(fn: Callable[..., Any]) -> CodeType:
    fn = getattr(fn, "__wrapped__", fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        raise TypeError(f"Cannot watch {fn!r}: it is not a Python function.")
    return code
