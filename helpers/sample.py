"""One sample of what was alive on the server: the plain record of a run, free of the server stack."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """What was alive on the server at ``t`` seconds into the run; ``extra_tasks`` are the tasks on its loop beyond
    the idle server's own, ``fds`` the open file descriptors (see ``helpers.probe.Probe``)."""

    t: float
    alive: Mapping[str, int]
    """Live coroutines of each watched function."""
    gauges: Mapping[str, float]
    """Values of the experiment's own gauges, e.g. the size of a registry of subscribers."""
    extra_tasks: int
    connections: int
    fds: int
