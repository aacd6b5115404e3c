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

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from helpers.errors import LabError
from helpers.plot import FONT_SIZE, PALETTE, LiveImage, state_finding, style_axes

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

    def _draw_marks(self, ax: Axes, top: float) -> None:
        for i, (t, label) in enumerate(self.marks):
            ax.axvline(t, color="#777777", lw=1.2, ls=":")
            ax.annotate(label, (t, top * (1.4 - 0.1 * (i % 2))), xytext=(3, 0), textcoords="offset points",
                        fontsize=FONT_SIZE - 4, va="top")

    def _group_figure(self, samples: list[StackSample]) -> Figure:
        """One panel per version: its live handlers and its Redis subscriptions, labelled at the lines' ends."""
        fig = Figure(figsize=(4.8 * len(self.groups), 4.2), layout="constrained")
        axes = fig.subplots(1, len(self.groups), sharey=True, squeeze=False)[0]
        times = [s.t for s in samples]
        top = max([1] + [max(s.alive.get(f, 0), s.named_subscriptions.get(n, 0))
                         for s in samples for f, n in self.groups.values()])
        for ax, (version, (function, name)) in zip(axes, self.groups.items(), strict=True):
            series = [("handlers", [s.alive.get(function, 0) for s in samples], PALETTE[0], "-"),
                      ("Redis subscriptions", [s.named_subscriptions.get(name, 0) for s in samples], PALETTE[1], "--")]
            for i, (label, values, colour, style) in enumerate(series):
                ax.plot(times, values, color=colour, lw=3, ls=style, drawstyle="steps-post")
                if times:   # labelled at the line's end: the handlers' below it, the subscriptions' above
                    ax.annotate(f"{label} {values[-1]}", (times[-1], values[-1]), xytext=(-4, 5 if i else -5),
                                textcoords="offset points", ha="right", va="bottom" if i else "top", color=colour,
                                fontsize=FONT_SIZE - 3)
            style_axes(ax, self.findings.get(version, version), xlabel=WATCH_AXIS, ylabel="count (all workers)")
            ax.set_ylim(-0.2 * top, top * 1.45)
            self._draw_marks(ax, top)
        state_finding(fig, self.finding)
        return fig

    def figure(self) -> Figure:
        samples = list(self.samples)   # the sampler may append meanwhile
        if self.groups:
            return self._group_figure(samples)
        with_redis = any(s.redis_clients is not None for s in samples)
        fig = Figure(figsize=(12 if with_redis else 7, 4.2), layout="constrained")
        axes = fig.subplots(1, 2 if with_redis else 1, squeeze=False)[0]
        times = [s.t for s in samples]
        names = list(samples[0].handlers) if samples else []
        for colour, name in zip(PALETTE, names, strict=False):
            axes[0].plot(times, [s.handlers[name] for s in samples], color=colour, linewidth=3, label=name,
                         drawstyle="steps-post")
        axes[0].plot(times, [sum(s.handlers.values()) for s in samples], color="black", linewidth=2,
                     linestyle="--", label="all workers", drawstyle="steps-post")
        style_axes(axes[0], "Live WebSocket handlers, per worker (their own reports)", xlabel=WATCH_AXIS,
                   ylabel="handlers (count)")
        if with_redis:
            axes[1].plot(times, [s.redis_clients for s in samples], color=PALETTE[4], linewidth=3,
                         label="connections (CLIENT LIST)", drawstyle="steps-post")
            axes[1].plot(times, [s.redis_subscriptions for s in samples], color=PALETTE[5], linewidth=3,
                         linestyle="--", label="subscriptions", drawstyle="steps-post")
            style_axes(axes[1], "What Redis itself counts", xlabel=WATCH_AXIS, ylabel="connections, subscriptions")
        for ax in axes:
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=FONT_SIZE - 3, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
            self._draw_marks(ax, ax.get_ylim()[1] / 1.45)
        state_finding(fig, self.finding)
        return fig

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
                if watch.samples and not future.done():
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
