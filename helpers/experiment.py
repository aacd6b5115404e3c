"""An experiment: clients connect and leave while a probe samples the server and a plot follows live.

    with Experiment(server, watch=get_metrics, title="The seed's endpoint") as ex:
        clients = ex.connect("/ws/metrics", 10)
        ex.wait(0.5)
        ex.leave(clients, "rst")
        ex.wait(1.0)
    run = ex.run

The cell blocks while the experiment runs; the server and the clients work on threads of
their own, a sampler thread reads the probe 20 times a second, and the main thread redraws
the figure a few times a second. On leaving the ``with`` block, normally, on an error or on
KeyboardInterrupt (the kernel's interrupt button), the sampler stops and every client still
open is reset, so nothing the experiment started outlives it. The server stays up for
inspection until the next ``serve()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from helpers import clients as lab_clients
from helpers.clients import Client, ClientGroup, Leave
from helpers.errors import LabError
from helpers.frames import every_frame
from helpers.plot import LiveImage, Panel, run_figure
from helpers.probe import Probe
from helpers.servers import LabServer
from helpers.servers.base import InProcessServer
from helpers.timeline import Event, Timeline

SAMPLE_PERIOD = 0.05
REDRAW_PERIOD = 0.3

_active: Experiment | None = None


class Experiment:
    """Clients connect and leave a running server while a probe counts what stays alive, and a plot follows.

    Use it as a ``with`` block: ``connect`` opens real clients, ``leave`` makes them go (``clean``, ``fin``,
    ``rst``, ``silent``, ``slow``) and returns the event it marked, ``wait``/``wait_until`` let time pass
    while the figure updates, ``probe.alive()`` counts the watched handlers now. After the block,
    ``ex.run`` holds the record (see ``Timeline``). ``watch`` names the functions to count (a function or a
    dict of them); ``gauges`` adds numbers of your own, read 20 times a second (e.g. a registry's size).
    ``finding(run)`` gives the last frame its title: the finding, computed from what was measured.
    """

    def __init__(
        self,
        server: LabServer,
        watch: Mapping[str, Callable[..., Any]] | Callable[..., Any],
        *,
        title: str = "",
        gauges: Mapping[str, Callable[[], float]] | None = None,
        panels: Sequence[Panel] | None = None,
        live: bool = True,
        finding: Callable[[Timeline], str] | None = None,
    ) -> None:
        if not server.running:
            raise LabError("The server given to the experiment is stopped; start one with serve().")
        self.server = server
        self.probe = Probe(server, watch, gauges)
        """Counts the watched handlers alive now (``ex.probe.alive()``); the sampler reads it 20 times a second."""
        self.run = Timeline(title=title, watched=list(self.probe.codes), gauges=list(self.probe.gauges))
        """The record: every sample, event and server log record so far (see ``Timeline``)."""
        self.live = LiveImage() if live else None
        self.panels = panels
        self.finding = finding
        """Computes the figure's title from the finished run (the last frame states the finding)."""
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_forever, name="lab-sampler", daemon=True)
        self.sampler_error: BaseException | None = None
        """What stopped the sampler early (a gauge or the probe raised); surfaced when the experiment closes."""
        self._t0 = 0.0
        self._last_draw = 0.0
        self._draw_seconds = 0.0
        self._every_frame = every_frame()
        """False in the suite's headless runs: only the final frame is drawn (``helpers.frames``)."""

    # Lifecycle.

    def __enter__(self) -> Experiment:
        global _active
        if _active is not None:
            _active.close()
        _active = self
        self._t0 = time.monotonic()
        self.run.samples.append(self.probe.sample(self._t0))
        self._sampler.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close(raise_sampler_error=error is None)

    def close(self, *, raise_sampler_error: bool = True) -> None:
        """Stop sampling, take a last sample, draw the final frame, and release every client: the clients are
        released even if the last sample or the drawing fails. A sampler that stopped early is reported here."""
        global _active
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            if self._sampler.is_alive():
                self._sampler.join(1.0)
            self.run.records = list(self.server.log.records)
            if self.sampler_error is None:
                self.run.samples.append(self.probe.sample(self._t0))
            self._draw(final=True)
        finally:
            lab_clients.close_all()
            if _active is self:
                _active = None
        if self.sampler_error is not None and raise_sampler_error:
            raise LabError("The experiment stopped sampling at "
                           f"{self.run.samples[-1].t if self.run.samples else 0:.2f} s: "
                           f"{self.sampler_error!r} (a gauge or the probe raised).") from self.sampler_error

    def _sample_forever(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.run.samples.append(self.probe.sample(self._t0))
            except Exception as error:  # noqa: BLE001 - surfaced by close(), and by wait() while the experiment runs
                self.sampler_error = error
                return
            next_at += SAMPLE_PERIOD
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _draw(self, final: bool = False) -> None:
        started = time.monotonic()
        if self.live is not None:
            run = self.run.snapshot()
            finding = self.finding(run) if final and self.finding is not None else None
            self.live.show(run_figure(run, self.panels, finding=finding))
        self._last_draw = time.monotonic()
        self._draw_seconds = self._last_draw - started

    # What a notebook calls.

    @property
    def now(self) -> float:
        """Seconds since the experiment started (the time axis of its run)."""
        return time.monotonic() - self._t0

    def mark(self, label: str) -> Event:
        """Record that something happens now; the returned event is what the run's queries take."""
        event = Event(self.now, label, len(self.server.log.records))
        self.run.events.append(event)
        return event

    def connect(self, path: str, n: int = 1, *, mark: bool = True, rcvbuf: int | None = None) -> ClientGroup:
        """Open ``n`` clients on the server's ``path`` (see ``helpers.clients.connect``)."""
        group = lab_clients.connect(self.server.url(path), n, rcvbuf=rcvbuf)
        if mark:
            self.mark(f"{n} connected")
        return group

    def leave(
        self, group: Client | Iterable[Client], how: Leave, label: str | None = None, *, mark: bool = True
    ) -> Event | None:
        """Make the clients leave in one way; return the event marked just before they left
        (None with ``mark=False``)."""
        chosen = [group] if isinstance(group, Client) else list(group)
        # marked before the clients leave: the server may react at once
        event = self.mark(label or f"{len(chosen)} left: {how}") if mark else None
        lab_clients.leave(chosen, how)
        return event

    @contextmanager
    def server_busy(self, limit: float = 10.0) -> Iterator[None]:
        """Keep the server's event loop blocked while the block runs, as a loaded server would be: whatever
        arrives meanwhile (two clients leaving, say) is handled together when the loop resumes."""
        entered, release = threading.Event(), threading.Event()

        def block() -> None:
            entered.set()
            release.wait(limit)

        if not isinstance(self.server, InProcessServer):
            raise LabError(f"server_busy() blocks the server's event loop in this kernel; {self.server.name} "
                           "runs in a subprocess of its own, so use uvicorn, hypercorn or granian here.")
        self.server.loop.call_soon_threadsafe(block)
        entered.wait(limit)
        try:
            yield
        finally:
            release.set()

    def wait(self, seconds: float, *, draw: bool = True) -> None:
        """Let time pass while the plot follows the samples.

        A frame is drawn only where the wait has room for one, judged by the last frame's drawing time. A wait of
        at least ``REDRAW_PERIOD`` too short for that lowers the estimate by a fifth, so one slow frame on a loaded
        machine does not stop the plot for good: a later wait draws again, and measures again. (``wait_until``'s
        20 ms steps never lower it: they draw only when a frame takes less than that.)"""
        if draw and seconds >= REDRAW_PERIOD and self._draw_seconds >= seconds:
            self._draw_seconds *= 0.8
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.sampler_error is not None:
                raise LabError(f"The experiment stopped sampling: {self.sampler_error!r} "
                               "(a gauge or the probe raised).") from self.sampler_error
            due = time.monotonic() - self._last_draw >= REDRAW_PERIOD
            # a frame must not overrun the wait
            if draw and self._every_frame and self.live is not None and due and remaining > self._draw_seconds:
                self._draw()
            time.sleep(min(remaining, 0.05))

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition()`` holds (checked every 20 ms) or ``timeout`` passes.

        No frame is drawn in the first ``REDRAW_PERIOD`` of the wait, so a condition that soon holds is seen
        when it happens, not after a redraw (which can take a second on a loaded machine)."""
        started = time.monotonic()
        deadline = started + timeout
        while not condition():
            if time.monotonic() >= deadline:
                return False
            self.wait(0.02, draw=time.monotonic() - started >= REDRAW_PERIOD)
        return True
