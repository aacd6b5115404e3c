"""The record of one experiment: samples over time, the events that happened, and queries on them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from helpers.sample import Sample
from helpers.serverlog import exception_types


@dataclass(frozen=True)
class Event:
    """Something the experiment did (clients connected, clients left, a mark), at ``t`` seconds into the run.

    ``ex.leave(...)`` and ``ex.mark(...)`` return their event: pass it to the run's queries
    (``run.alive_before(name, event)``, ``run.seconds_until(name, event, at_most=0)``, ...).
    """

    t: float
    """When it happened, in seconds since the run started."""
    label: str
    log_mark: int = 0
    """How many server log records existed when the event happened."""


@dataclass
class Timeline:
    """The record of one experiment: samples taken 20 times a second, the events, the server's log.

    Every query takes an event (what ``ex.leave`` or ``ex.mark`` returned) or the start of its label:

    - ``final(name)``, ``peak(name)``: a count at the end of the run, or its highest value;
    - ``alive_before(name, event)``: the count in the last sample taken before the event;
    - ``ended_during(name, event)``: how many fewer were alive at the end of the event's window
      (until the next event, or the end of the run) than just before it;
    - ``seconds_until(name, event, at_most)``: seconds from the event until the count first fell
      to ``at_most`` or below (None: it never did);
    - ``records_after(event)``, ``exception_types()``: what the server logged.

    ``name`` is a watched function's name, a gauge's name, or ``connections``, ``extra_tasks``, ``fds``.
    """

    title: str
    """The figure's title (the experiment's ``title=``)."""
    watched: Sequence[str]
    gauges: Sequence[str] = ()
    samples: list[Sample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    records: list[logging.LogRecord] = field(default_factory=list)
    """The server's log records up to the end of the run."""

    def snapshot(self) -> Timeline:
        """A copy that stays still while the sampler thread keeps appending to this run."""
        return Timeline(self.title, list(self.watched), list(self.gauges), list(self.samples), list(self.events),
                   list(self.records))

    def times(self) -> list[float]:
        """When each sample was taken, in seconds since the run started."""
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
        for sample_t, sample_value in zip(self.times(), self.series(name), strict=False):
            if sample_t > t:
                break
            value = sample_value
        return value

    def before(self, name: str, t: float) -> float:
        """The value of the last sample taken strictly before ``t`` (the first sample if none was)."""
        value = self.series(name)[0]
        for sample_t, sample_value in zip(self.times(), self.series(name), strict=False):
            if sample_t >= t:
                break
            value = sample_value
        return value

    def final(self, name: str) -> float:
        """The last sample's value: what was still alive (or the gauge's value) when the run ended."""
        return self.series(name)[-1]

    def peak(self, name: str) -> float:
        """The largest value sampled during the run."""
        return max(self.series(name))

    def event(self, label_start: str | Event) -> Event:
        """The event itself, or the first event whose label starts with ``label_start``."""
        if isinstance(label_start, Event):
            return label_start
        for event in self.events:
            if event.label.startswith(label_start):
                return event
        raise KeyError(f"No event starting with {label_start!r} in {[e.label for e in self.events]}.")

    def window(self, event: str | Event) -> tuple[float, float]:
        """The time from an event to the next event (or the end of the run)."""
        start = self.event(event)
        later = [e.t for e in self.events if e.t > start.t]
        return start.t, (later[0] if later else self.times()[-1])

    def records_after(self, event: str | Event) -> list[logging.LogRecord]:
        """Server log records written between an event and the next event (or the end of the run)."""
        start = self.event(event)
        later = [e.log_mark for e in self.events if e.t > start.t]
        return self.records[start.log_mark:(later[0] if later else len(self.records))]

    def exception_types(self, event: str | Event | None = None) -> dict[str, int]:
        """Exceptions the server logged, by class name: during the whole run, or in an event's window."""
        return dict(exception_types(self.records if event is None else self.records_after(event)))

    def alive_before(self, name: str, event: str | Event) -> float:
        """The count just before the event (the last sample taken before it)."""
        return self.before(name, self.event(event).t)

    def ended_during(self, name: str, event: str | Event) -> float:
        """How many fewer ``name`` were alive at the end of the event's window than just before the event."""
        start, end = self.window(event)
        return self.before(name, start) - self.before(name, end)

    def seconds_until(self, name: str, event: str | Event, at_most: float) -> float | None:
        """Seconds from an event until ``name`` first fell to ``at_most`` or below (None: it never did)."""
        start = self.event(event).t
        for t, value in zip(self.times(), self.series(name), strict=False):
            if t >= start and value <= at_most:
                return t - start
        return None

    def sampling_rate(self) -> float:
        times = self.times()
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0

    def _repr_png_(self) -> bytes:
        from helpers.plot import png, run_figure

        return png(run_figure(self))
