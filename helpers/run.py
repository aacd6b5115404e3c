"""The record of one experiment: samples over time, the events that happened, and queries on them."""

from __future__ import annotations

from collections.abc import Sequence
import logging
from dataclasses import dataclass, field

from helpers.sample import Sample
from helpers.serverlog import exception_types


@dataclass(frozen=True)
class Event:
    t: float
    label: str
    log_mark: int = 0
    """How many server log records existed when the event happened."""


@dataclass
class Run:
    title: str
    watched: Sequence[str]
    gauges: Sequence[str] = ()
    samples: list[Sample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    records: list[logging.LogRecord] = field(default_factory=list)
    """The server's log records up to the end of the run."""

    def snapshot(self) -> Run:
        """A copy that stays still while the sampler thread keeps appending to this run."""
        return Run(self.title, list(self.watched), list(self.gauges), list(self.samples), list(self.events), list(self.records))

    def times(self) -> list[float]:
        return [s.t for s in self.samples]

    def series(self, name: str) -> list[float]:
        """A watched function's live count, or ``connections``, ``extra_tasks``, ``fds``."""
        if name in self.watched:
            return [s.alive[name] for s in self.samples]
        if name in self.gauges:
            return [s.gauges[name] for s in self.samples]
        return [getattr(s, name) for s in self.samples]

    def at(self, name: str, t: float) -> float:
        """The value of the last sample taken at or before ``t``."""
        value = self.series(name)[0]
        for sample_t, sample_value in zip(self.times(), self.series(name)):
            if sample_t > t:
                break
            value = sample_value
        return value

    def final(self, name: str) -> float:
        return self.series(name)[-1]

    def peak(self, name: str) -> float:
        return max(self.series(name))

    def event(self, label_start: str) -> Event:
        for event in self.events:
            if event.label.startswith(label_start):
                return event
        raise KeyError(f"No event starting with {label_start!r} in {[e.label for e in self.events]}.")

    def window(self, label_start: str) -> tuple[float, float]:
        """The time from an event to the next event (or the end of the run)."""
        start = self.event(label_start)
        later = [e.t for e in self.events if e.t > start.t]
        return start.t, (later[0] if later else self.times()[-1])

    def records_after(self, label_start: str) -> list[logging.LogRecord]:
        """Server log records written between an event and the next event (or the end of the run)."""
        start = self.event(label_start)
        later = [e.log_mark for e in self.events if e.t > start.t]
        return self.records[start.log_mark:(later[0] if later else len(self.records))]

    def exception_types(self) -> dict[str, int]:
        """Exceptions the server logged during the run, by class name."""
        return dict(exception_types(self.records))

    def ended_after(self, name: str, label_start: str) -> float:
        """How many fewer ``name`` were alive at the end of an event's window than just before it."""
        start, end = self.window(label_start)
        return self.at(name, start - 1e-9) - self.at(name, end - 1e-9)

    def settled_after(self, name: str, label_start: str, target: int) -> float | None:
        """Seconds from an event until ``name`` first reached ``target`` or below (None: never)."""
        start = self.event(label_start).t
        for t, value in zip(self.times(), self.series(name)):
            if t >= start and value <= target:
                return t - start
        return None

    def sampling_rate(self) -> float:
        times = self.times()
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0

    def _repr_png_(self) -> bytes:
        from helpers.plot import png, run_figure

        return png(run_figure(self))
