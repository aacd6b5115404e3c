"""A live plot of a running stack: each worker's live handlers and their sum, with Redis's own counts beside them.

    result, watch = live.run_watched(lab, lambda: pubsub.measure_across_workers(lab))

The measurement runs in a thread of its own; a sampler thread reads the stack every ``PERIOD``
seconds, and the calling thread (the kernel's) redraws one image in place (``helpers.plot.LiveImage``),
so the plot moves while the measurement runs and its last frame stays in the saved notebook.

The measurement may ``mark`` its steps (drawn as labelled lines); with ``groups`` (one per endpoint
version: its handler function and its Redis client name) the plot is one small panel per version,
its handlers and its Redis subscriptions side by side, each panel titled by ``findings`` once known.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from matplotlib.figure import Figure

from helpers.errors import LabError
from helpers.frames import every_frame
from helpers.plot import LiveImage, paired_panels, workers_figure

T = TypeVar("T")
PERIOD = 0.1
"""Seconds between two samples."""
REDRAW_SECONDS = 1.0
"""Seconds between two redrawn frames, while the measurement runs."""
WATCH_AXIS = "seconds since the watch started"


@dataclass(frozen=True)
class StackSample:
    t: float
    """Seconds since the watch started."""
    handlers: dict[str, int]
    """Live WebSocket handlers per worker (each worker's own report)."""
    redis_clients: int | None = None
    """Connections Redis lists (``CLIENT LIST``) but the one asking; None: no Redis in the stack."""
    redis_subscriptions: int | None = None
    """Channel subscriptions over those connections (the ``sub`` field of ``CLIENT LIST``)."""
    alive: dict[str, int] = field(default_factory=dict)
    """Live coroutines of each watched function, all workers together (their reports)."""
    named_subscriptions: dict[str, int] = field(default_factory=dict)
    """Subscriptions per Redis client name, the worker's pid left out ("finally-1234" counts as "finally")."""


@dataclass
class StackWatch:
    """Samples of one stack, and the figure drawn from them."""

    lab: Any
    samples: list[StackSample] = field(default_factory=list)
    image: LiveImage = field(default_factory=LiveImage)
    started: float = field(default_factory=time.monotonic)
    marks: list[tuple[float, str]] = field(default_factory=list)
    """(seconds since the watch started, label): the measurement's steps."""
    groups: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Version -> (its handler function, its Redis client name): one panel each; empty: the totals' plot."""
    findings: dict[str, str] = field(default_factory=dict)
    """Version -> what its panel shows, in a sentence (its title once the measurement is over)."""
    finding: str = ""
    """What the whole figure shows, in a sentence (its title once the measurement is over)."""

    def mark(self, label: str) -> None:
        """Note a step of the measurement, now, after a sample of the stack as it stands just before it (so that
        the plot shows what the step starts from, whatever the sampler's own timing)."""
        self.try_sample()
        self.marks.append((round(time.monotonic() - self.started, 2), label))

    def sample(self) -> StackSample:
        reports = {worker.name: worker.report() for worker in self.lab.workers}
        handlers = {name: int(report["handlers"]) for name, report in reports.items()}
        alive: dict[str, int] = {}
        for report in reports.values():
            for function, n in report.get("alive", {}).items():
                alive[function] = alive.get(function, 0) + int(n)
        clients = subscriptions = None
        named: dict[str, int] = {}
        if self.lab.redis is not None:
            listed = self.lab.redis.client_list()
            clients, subscriptions = len(listed), sum(int(c.get("sub", 0)) for c in listed)
            for c in listed:
                if c.get("name"):
                    version = str(c["name"]).rsplit("-", 1)[0]
                    named[version] = named.get(version, 0) + int(c.get("sub", 0))
        taken = StackSample(round(time.monotonic() - self.started, 2), handlers, clients, subscriptions, alive, named)
        self.samples.append(taken)
        return taken

    def try_sample(self) -> bool:
        """``sample()``, or False when the stack no longer answers (stopped, or a process died)."""
        if self.lab.stopped:
            return False
        from redis.exceptions import RedisError

        try:
            self.sample()
        except (OSError, ValueError, LabError, RedisError):
            return False
        return True

    def largest_gap(self) -> float:
        """The longest time between two samples, in seconds."""
        times = [s.t for s in list(self.samples)]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def figure(self) -> Figure:
        """The samples so far: one panel per version in ``groups``, else the workers' handlers and Redis's counts."""
        samples = list(self.samples)   # the sampler may append meanwhile
        times = [s.t for s in samples]
        if self.groups:
            panels = {self.findings.get(version, version): {
                "handlers": [s.alive.get(function, 0) for s in samples],
                "Redis subscriptions": [s.named_subscriptions.get(name, 0) for s in samples],
            } for version, (function, name) in self.groups.items()}
            return paired_panels(times, panels, marks=self.marks, xlabel=WATCH_AXIS, ylabel="count (all workers)",
                                 finding=self.finding)
        names = list(samples[0].handlers) if samples else []
        handlers = {name: [s.handlers[name] for s in samples] for name in names}
        with_redis = any(s.redis_clients is not None for s in samples)
        redis = ([s.redis_clients for s in samples], [s.redis_subscriptions for s in samples]) if with_redis else None
        return workers_figure(times, handlers, redis, marks=self.marks, xlabel=WATCH_AXIS, finding=self.finding)

    def draw(self) -> None:
        self.image.show(self.figure())


def run_watched(lab: Any, measure: Callable[[], T], *, period: float = PERIOD,
                watch: StackWatch | None = None) -> tuple[T, StackWatch]:
    """Run ``measure()`` in a thread while another samples ``lab`` every ``period`` seconds, and this one
    redraws the plot every ``REDRAW_SECONDS`` (a frame can take a second on a loaded machine; the
    samples do not wait for it). Returns the measurement's result and the samples. ``watch``: one made
    beforehand, so that the measurement can ``mark`` its steps on it.

    An interrupt (Jupyter's stop button) stops the stack, so that the measurement fails at once,
    then is raised again once the measurement's thread has ended.
    """
    watch = StackWatch(lab) if watch is None else watch
    done = threading.Event()

    def sample_until_done() -> None:
        while not done.is_set() and watch.try_sample():
            done.wait(period)

    sampler = threading.Thread(target=sample_until_done, name="lab-stack-sampler", daemon=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lab-stack-measure") as pool:
        future = pool.submit(measure)
        try:  # from here on, an interrupt stops the stack, which ends the measurement the pool waits for
            sampler.start()
            while not future.done():
                concurrent.futures.wait([future], timeout=REDRAW_SECONDS)
                if watch.samples and not future.done() and every_frame():
                    watch.draw()
        except KeyboardInterrupt:
            lab.stop()
            raise
        finally:
            done.set()
            if sampler.ident is not None:
                sampler.join(5.0)
        result = future.result()  # the measurement's own error, if any, not the sampler's
    watch.try_sample()
    if watch.samples:
        watch.draw()
    return result, watch
