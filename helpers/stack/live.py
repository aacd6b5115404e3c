"""A live plot of a running stack: each worker's live handlers and their sum, with Redis's own counts beside them.

    result, watch = live.run_watched(lab, lambda: pubsub.measure_across_workers(lab))

The measurement runs in a thread of its own; the calling thread (the kernel's) samples the stack
every ``PERIOD`` seconds and redraws one image in place (``helpers.plot.LiveImage``), so the plot
moves while the measurement runs and its last frame stays in the saved notebook.
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
from helpers.plot import FONT_SIZE, PALETTE, LiveImage, style_axes

T = TypeVar("T")
PERIOD = 0.1
"""Seconds between two samples."""
REDRAW_SECONDS = 1.0
"""Seconds between two redrawn frames, while the measurement runs."""


@dataclass(frozen=True)
class Sample:
    t: float
    """Seconds since the watch started."""
    handlers: dict[str, int]
    """Live WebSocket handlers per worker (each worker's own report)."""
    redis_clients: int | None = None
    """Connections Redis lists (``CLIENT LIST``) but the one asking; None: no Redis in the stack."""
    redis_subscriptions: int | None = None
    """Channel subscriptions over those connections (the ``sub`` field of ``CLIENT LIST``)."""


@dataclass
class StackWatch:
    """Samples of one stack, and the figure drawn from them."""

    lab: Any
    samples: list[Sample] = field(default_factory=list)
    image: LiveImage = field(default_factory=LiveImage)
    started: float = field(default_factory=time.monotonic)

    def sample(self) -> Sample:
        handlers = {worker.name: worker.handlers() for worker in self.lab.workers}
        clients = subscriptions = None
        if self.lab.redis is not None:
            listed = self.lab.redis.client_list()
            clients, subscriptions = len(listed), sum(int(c.get("sub", 0)) for c in listed)
        taken = Sample(round(time.monotonic() - self.started, 2), handlers, clients, subscriptions)
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
        samples = list(self.samples)   # the sampler may append meanwhile
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
        style_axes(axes[0], "Live WebSocket handlers, per worker (their own reports)")
        if with_redis:
            axes[1].plot(times, [s.redis_clients for s in samples], color=PALETTE[4], linewidth=3,
                         label="connections (CLIENT LIST)", drawstyle="steps-post")
            axes[1].plot(times, [s.redis_subscriptions for s in samples], color=PALETTE[5], linewidth=3,
                         linestyle="--", label="subscriptions", drawstyle="steps-post")
            style_axes(axes[1], "What Redis itself counts")
        for ax in axes:
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=FONT_SIZE - 3, loc="upper left")
        return fig

    def draw(self) -> None:
        self.image.show(self.figure())


def run_watched(lab: Any, measure: Callable[[], T], *, period: float = PERIOD) -> tuple[T, StackWatch]:
    """Run ``measure()`` in a thread while another samples ``lab`` every ``period`` seconds, and this one
    redraws the plot every ``REDRAW_SECONDS`` (a frame can take a second on a loaded machine; the
    samples do not wait for it). Returns the measurement's result and the samples.

    An interrupt (Jupyter's stop button) stops the stack, so that the measurement fails at once,
    then is raised again once the measurement's thread has ended.
    """
    watch = StackWatch(lab)
    done = threading.Event()

    def sample_until_done() -> None:
        while not done.is_set() and watch.try_sample():
            done.wait(period)

    sampler = threading.Thread(target=sample_until_done, name="lab-stack-sampler", daemon=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lab-stack-measure") as pool:
        future = pool.submit(measure)
        sampler.start()
        try:
            while not future.done():
                concurrent.futures.wait([future], timeout=REDRAW_SECONDS)
                if watch.samples and not future.done():
                    watch.draw()
        except KeyboardInterrupt:
            lab.stop()
            raise
        finally:
            done.set()
            sampler.join(5.0)
        result = future.result()  # the measurement's own error, if any, not the sampler's
    watch.try_sample()
    if watch.samples:
        watch.draw()
    return result, watch
