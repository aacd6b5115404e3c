"""Figures of an experiment, drawn for a projector: large type, thick lines, colour-blind-safe colours.

The house style, for every figure the notebooks draw: the figure's title states the finding (``finding=``),
each panel's title says which case it shows; every axis has its unit; legends sit outside the data;
series that would overlap are drawn as small multiples (``small_multiples``), one panel each, on shared axes.

Figures are rendered to PNG and shown through an IPython display handle, so the same image
updates in place while the experiment runs, the final frame stays in the saved notebook, and
nothing depends on the matplotlib backend the kernel happens to use.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from helpers.timeline import Timeline

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
"""The lab's colours, in the order curves take them: Okabe & Ito's palette, distinguishable with every common
colour-vision deficiency."""
FONT_SIZE = 14


TIME_AXIS = "time since start (s)"
COUNT_AXIS = "alive (count)"


def style_axes(ax: Axes, title: str, *, xlabel: str = TIME_AXIS, ylabel: str = COUNT_AXIS) -> None:
    """The house style for one panel: its case as a left-aligned title, both axes labelled with their unit."""
    figure = ax.get_figure(root=True)
    assert isinstance(figure, Figure)  # an Axes drawn by the lab always belongs to a figure
    width = figure.get_size_inches()[0] / max(1, len(figure.axes))
    wrapped = "\n".join(textwrap.fill(line, max(20, int(width * 6.5))) for line in title.split("\n"))
    ax.set_title(wrapped, fontsize=FONT_SIZE, loc="left")
    ax.set_xlabel(xlabel, fontsize=FONT_SIZE - 1)
    ax.set_ylabel(ylabel, fontsize=FONT_SIZE - 1)
    ax.tick_params(labelsize=FONT_SIZE - 2)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _peak(run: Timeline, connections: bool = True) -> float:
    names = [*run.watched, *run.gauges] + (["connections"] if connections else [])
    return max([1] + [run.peak(name) for name in names])


def state_finding(fig: Figure, finding: str | None) -> None:
    """Put the figure's finding, one sentence, above every panel."""
    if finding:
        width = int(fig.get_size_inches()[0] * 7)
        fig.suptitle(textwrap.fill(finding, width), fontsize=FONT_SIZE + 2, fontweight="bold", x=0.01, ha="left")


def legend_outside(fig: Figure, ax: Axes) -> None:
    """One legend for the figure, below the panels, where it covers no data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(handles)),
                   fontsize=FONT_SIZE - 3, frameon=False)


def draw_run(ax: Axes, run: Timeline, *, connections: bool = True, top: float | None = None,
             legend: bool = True) -> None:
    """Draw a run's series (handlers solid, gauges dash-dot, connections dashed) and its events (dotted lines).

    ``legend=False`` leaves the legend to the figure (``legend_outside``)."""
    times = run.times()
    for colour, name in zip(PALETTE, run.watched, strict=False):
        ax.step(times, run.series(name), where="post", lw=3, color=colour, label=f"{name}() alive")
    for colour, name in zip(PALETTE[len(run.watched):], run.gauges, strict=False):
        ax.step(times, run.series(name), where="post", lw=2.5, ls="-.", color=colour, label=name)
    if connections:
        ax.step(times, run.series("connections"), where="post", lw=2, ls="--", color="#555555",
                label="connections uvicorn holds")
    top = top if top is not None else _peak(run, connections)
    ax.set_ylim(-0.5, top * 1.35 + 1)
    for i, event in enumerate(run.events):
        ax.axvline(event.t, color="#777777", lw=1.2, ls=":")
        ax.annotate(event.label, (event.t, top * (1.3 - 0.09 * (i % 3)) + 0.5), fontsize=FONT_SIZE - 3,
                    xytext=(4, 0), textcoords="offset points", va="top")
    if times:
        ax.set_xlim(0, max(times[-1], 0.5))
    if legend:
        ax.legend(fontsize=FONT_SIZE - 3, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    style_axes(ax, run.title)


Panel = tuple[str, Sequence[str]]
"""A y-axis label and the series drawn on that axis (watched functions, gauges, or probe fields)."""

MAX_LABELLED_EVENTS = 8


def draw_panel(ax: Axes, run: Timeline, panel: Panel, colours: Sequence[str], *, labels: bool) -> None:
    """Draw one panel of a stacked figure: the series of ``panel`` against time, the legend outside the data."""
    ylabel, names = panel
    times = run.times()
    for colour, name in zip(colours, names, strict=False):
        label = f"{name}() alive" if name in run.watched else name
        ax.step(times, run.series(name), where="post", lw=2.5, color=colour, label=label)
    top = max([1e-9] + [max(run.series(name)) for name in names])
    ax.set_ylim(0, top * 1.3)
    for event in run.events:
        ax.axvline(event.t, color="#999999", lw=1, ls=":")
    if labels and len(run.events) <= MAX_LABELLED_EVENTS:
        for i, event in enumerate(run.events):
            ax.annotate(event.label, (event.t, top * (1.25 - 0.08 * (i % 3))), fontsize=FONT_SIZE - 3,
                        xytext=(4, 0), textcoords="offset points", va="top")
    if times:
        ax.set_xlim(0, max(times[-1], 0.5))
    ax.set_ylabel(ylabel, fontsize=FONT_SIZE - 1)
    ax.tick_params(labelsize=FONT_SIZE - 2)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=FONT_SIZE - 4, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def run_figure(run: Timeline, panels: Sequence[Panel] | None = None, *, finding: str | None = None) -> Figure:
    """The run as one chart, or as stacked panels sharing the time axis (for series of different units)."""
    if not panels:
        fig = Figure(figsize=(11, 5), layout="constrained")
        draw_run(fig.add_subplot(), run)
        state_finding(fig, finding)
        return fig
    fig = Figure(figsize=(11, 2.6 * len(panels) + 0.6), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    used = 0
    for i, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
        draw_panel(ax, run, panel, PALETTE[used:] + PALETTE[:used], labels=i == 0)
        used = (used + len(panel[1])) % len(PALETTE)
    axes[0].set_title(run.title, fontsize=FONT_SIZE + 1, loc="left")
    axes[-1].set_xlabel(TIME_AXIS, fontsize=FONT_SIZE)
    state_finding(fig, finding)
    return fig


def compare_figure(runs: Sequence[Timeline], *, finding: str | None = None) -> Figure:
    """Runs side by side on one figure (small multiples), with shared axes: before and after, or one per backend.

    ``finding`` is the figure's title: the one sentence a reader should take from it. The legend sits below."""
    fig = Figure(figsize=(5.5 * len(runs), 5.2), layout="constrained")
    axes = fig.subplots(1, len(runs), sharey=True, squeeze=False)[0]
    top = max(_peak(run) for run in runs)
    for ax, run in zip(axes, runs, strict=True):
        draw_run(ax, run, top=top, legend=False)
    legend_outside(fig, axes[0])
    state_finding(fig, finding)
    return fig


Curve = Sequence[tuple[float, float]]
"""(x, y) points of one series, drawn as a step line."""


def small_multiples(curves: Mapping[str, Curve], *, finding: str, xlabel: str, ylabel: str,
                    top: float | None = None, note: Callable[[str, Curve], str] | None = None,
                    marks: Mapping[str, Sequence[tuple[float, str]]] | None = None) -> Figure:
    """One panel per series, side by side on shared axes, so that no line hides another.

    Each panel is titled with its series' name; ``note(name, curve)`` adds a line under it (e.g. the last
    value, "6 of 6 alive at 2.0 s"); ``marks[name]`` draws (x, label) as dotted lines in that panel.
    ``finding`` is the figure's title."""
    fig = Figure(figsize=(3.4 * len(curves) + 0.8, 4.4), layout="constrained")
    axes = fig.subplots(1, len(curves), sharex=True, sharey=True, squeeze=False)[0]
    peak = top if top is not None else max([1.0] + [y for curve in curves.values() for _, y in curve])
    for ax, colour, (name, curve) in zip(axes, PALETTE, curves.items(), strict=False):
        ax.step([x for x, _ in curve], [y for _, y in curve], where="post", lw=3, color=colour)
        ax.set_ylim(-0.05 * peak - 0.2, peak * 1.15 + 0.2)
        for i, (x, label) in enumerate((marks or {}).get(name, [])):
            ax.axvline(x, color="#777777", lw=1.2, ls=":")
            ax.annotate(label, (x, peak * (1.12 - 0.1 * (i % 2)) + 0.2), fontsize=FONT_SIZE - 4,
                        xytext=(3, 0), textcoords="offset points", va="top")
        style_axes(ax, name + (f"\n{note(name, curve)}" if note else ""), xlabel=xlabel, ylabel=ylabel)
        if ax is not axes[0]:
            ax.set_ylabel("")
    state_finding(fig, finding)
    return fig


Series = tuple[Sequence[float], Sequence[float]]
"""x and y values of one line."""


def labelled_lines(panels: Mapping[str, Mapping[str, Series]], *, xlabel: str, ylabels: Sequence[str], finding: str,
                   columns: int = 2, xmax: float | None = None) -> Figure:
    """One panel per entry of ``panels``, keyed by its title (what the panel shows), ``columns`` to a row. Each series
    is a line with markers, named at its end rather than in a legend; the series take the palette's colours in order,
    the same in every panel."""
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(6.5 * columns, 4.5 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, ylabel, (title, lines) in zip(axes, ylabels, panels.items(), strict=False):
        for colour, (label, (x, y)) in zip(PALETTE, lines.items(), strict=False):
            ax.plot(x, y, "o-", color=colour, lw=2.5)
            ax.annotate(label, (x[-1], y[-1]), xytext=(6, 0), textcoords="offset points", va="center",
                        color=colour, fontsize=FONT_SIZE - 1, fontweight="bold")
        style_axes(ax, title, xlabel=xlabel, ylabel=ylabel)
        ax.set_title(textwrap.fill(title, 58), fontsize=FONT_SIZE - 1, loc="left")   # a panel is 6.5 in wide
        if xmax is not None:
            ax.set_xlim(0, xmax)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    state_finding(fig, finding)
    return fig


Mark = tuple[float, str]
"""(x, label): a step of a measurement, drawn as a dotted vertical line."""


def draw_marks(ax: Axes, marks: Sequence[Mark], top: float) -> None:
    """A measurement's steps as dotted vertical lines, labelled near ``top``, every other label a little lower."""
    for i, (x, label) in enumerate(marks):
        ax.axvline(x, color="#777777", lw=1.2, ls=":")
        ax.annotate(label, (x, top * (1.4 - 0.1 * (i % 2))), xytext=(3, 0), textcoords="offset points",
                    fontsize=FONT_SIZE - 4, va="top")


def paired_panels(times: Sequence[float], panels: Mapping[str, Mapping[str, Sequence[int]]], *, marks: Sequence[Mark],
                  xlabel: str, ylabel: str, finding: str) -> Figure:
    """One panel per entry of ``panels`` (keyed by its title), on a shared y axis: the first series solid, the second
    dashed, each labelled with its last value at the line's end (the first below it, the second above)."""
    fig = Figure(figsize=(4.8 * len(panels), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    top = max([1] + [max(values, default=0) for series in panels.values() for values in series.values()])
    for ax, (title, series) in zip(axes, panels.items(), strict=True):
        for i, (colour, style, (label, values)) in enumerate(zip(PALETTE, ("-", "--"), series.items(), strict=False)):
            ax.plot(times, values, color=colour, lw=3, ls=style, drawstyle="steps-post")
            if times:
                ax.annotate(f"{label} {values[-1]}", (times[-1], values[-1]), xytext=(-4, 5 if i else -5),
                            textcoords="offset points", ha="right", va="bottom" if i else "top", color=colour,
                            fontsize=FONT_SIZE - 3)
        style_axes(ax, title, xlabel=xlabel, ylabel=ylabel)
        ax.set_ylim(-0.2 * top, top * 1.45)
        draw_marks(ax, marks, top)
    state_finding(fig, finding)
    return fig


def workers_figure(times: Sequence[float], handlers: Mapping[str, Sequence[int]],
                   redis: tuple[Sequence[int | None], Sequence[int | None]] | None, *, marks: Sequence[Mark],
                   xlabel: str, finding: str) -> Figure:
    """Live handlers per worker and all together; beside them, when ``redis`` is given, the connections and
    subscriptions Redis itself counts. Legends below the panels."""
    fig = Figure(figsize=(12 if redis else 7, 4.2), layout="constrained")
    axes = fig.subplots(1, 2 if redis else 1, squeeze=False)[0]
    for colour, (name, values) in zip(PALETTE, handlers.items(), strict=False):
        axes[0].plot(times, values, color=colour, linewidth=3, label=name, drawstyle="steps-post")
    totals = [sum(column) for column in zip(*handlers.values(), strict=True)] if handlers else []
    axes[0].plot(times[:len(totals)], totals, color="black", linewidth=2, linestyle="--", label="all workers",
                 drawstyle="steps-post")
    style_axes(axes[0], "Live WebSocket handlers, per worker (their own reports)", xlabel=xlabel,
               ylabel="handlers (count)")
    if redis:
        clients, subscriptions = redis
        axes[1].plot(times, clients, color=PALETTE[4], linewidth=3, label="connections (CLIENT LIST)",
                     drawstyle="steps-post")
        axes[1].plot(times, subscriptions, color=PALETTE[5], linewidth=3, linestyle="--", label="subscriptions",
                     drawstyle="steps-post")
        style_axes(axes[1], "What Redis itself counts", xlabel=xlabel, ylabel="connections, subscriptions")
    for ax in axes:
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=FONT_SIZE - 3, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
        draw_marks(ax, marks, ax.get_ylim()[1] / 1.45)
    state_finding(fig, finding)
    return fig


def png(fig: Figure, dpi: int = 80) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


class LiveImage:
    """A display slot in the notebook that can be replaced in place; silent outside IPython."""

    def __init__(self) -> None:
        self._handle: Any = None  # IPython's DisplayHandle, once shown (IPython is imported only when showing)
        self.frames = 0

    def show(self, fig: Figure) -> None:
        from IPython.core.getipython import get_ipython  # typed, unlike IPython's lazy top-level attribute
        from IPython.display import Image, display

        self.frames += 1
        if get_ipython() is None:
            return
        image = Image(data=png(fig))
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)


def show(fig: Figure) -> None:
    """Display a figure once (outside an experiment)."""
    LiveImage().show(fig)


def bars_figure(values: Mapping[str, Sequence[float]], series: Sequence[str], *, finding: str, xlabel: str) -> Figure:
    """Horizontal bars, one group per row of ``values`` (e.g. a mechanism), one bar per ``series`` (e.g. before
    and after), each bar labelled with its value; the legend below, the finding as the title."""
    fig = Figure(figsize=(11, 0.75 * len(values) + 2.2), layout="constrained")
    ax = fig.add_subplot()
    height = 0.8 / len(series)
    rows = list(values)
    for j, (colour, label) in enumerate(zip(PALETTE, series, strict=False)):
        ys = [len(rows) - 1 - i + (len(series) / 2 - j - 0.5) * height for i in range(len(rows))]
        xs = [values[row][j] for row in rows]
        ax.barh(ys, xs, height=height * 0.95, color=colour, label=label)
        for y, x in zip(ys, xs, strict=True):
            ax.annotate(f"{x:g}", (x, y), xytext=(4, 0), textcoords="offset points", va="center",
                        fontsize=FONT_SIZE - 3)
    ax.set_yticks(range(len(rows)), list(reversed(rows)), fontsize=FONT_SIZE - 2)
    ax.set_xlabel(xlabel, fontsize=FONT_SIZE - 1)
    ax.tick_params(axis="x", labelsize=FONT_SIZE - 2)
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    legend_outside(fig, ax)
    state_finding(fig, finding)
    return fig
