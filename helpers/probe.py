"""Counting what is alive on the server: handler coroutines, tasks, connections, file descriptors.

A handler is "alive" while its coroutine is anywhere in a task's await chain. The server
walks each task's chain (``ws_leakcheck.awaitchain``) looking for the functions the probe watches,
so it finds the endpoint however many layers (FastAPI, Starlette, the server) sit above it,
and it also finds a watched function running in a task of its own. Each server counts where
its loop is: in the kernel's process for uvicorn, hypercorn and granian, in its subprocess
for daphne.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import CodeType
from typing import Any

import psutil

from helpers.sample import Sample
from helpers.servers.base import LabServer
from ws_leakcheck.awaitchain import code_of

__all__ = ["Probe", "Sample"]


class Probe:
    """Samples one lab server: live coroutines of the watched functions, gauges, tasks, connections, fds.

    ``fds`` counts the kernel's open file descriptors, plus the server's subprocess's for daphne.

    ``watch``: a function, or ``{name: function}``; ``gauges``: ``{name: callable returning a number}``.
    """

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
        self.watch = dict(watch)
        self.codes: dict[str, CodeType] = {name: code_of(fn) for name, fn in self.watch.items()}
        """The watched functions' code objects (a TypeError now, for one that is not a Python function)."""
        self._processes = [psutil.Process()]
        if server.os_process().pid != self._processes[0].pid:
            self._processes.append(server.os_process())  # daphne's subprocess holds the server's sockets

    def alive(self) -> dict[str, int]:
        """Live coroutines of each watched function, counted by the server where its tasks run."""
        return self.server.count_alive(self.watch)

    def sample(self, t0: float = 0.0) -> Sample:
        return Sample(
            t=time.monotonic() - t0,
            alive=self.alive(),
            gauges={name: read() for name, read in self.gauges.items()},
            extra_tasks=self.server.extra_tasks(),
            connections=self.server.connections(),
            fds=sum(process.num_fds() for process in self._processes),
        )
