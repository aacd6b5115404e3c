"""Figures of an experiment, drawn for a projector: large type, thick lines, colour-blind-safe colours.

Figures are rendered to PNG and shown through an IPython display handle, so the same image
updates in place while the experiment runs, the final frame stays in the saved notebook, and
nothing depends on the matplotlib backend the kernel happens to use.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from helpers.run import Run

# Okabe & Ito's palette, distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
FONT_SIZE = 14


def style_axes(ax: Axes, title: str) -> None:
    figure = ax.get_figure(root=True)
    assert isinstance(figure, Figure)  # an Axes drawn by the lab always belongs to a figure
    width = figure.get_size_inches()[0] / len(figure.axes)
    ax.set_title(textwrap.fill(title, int(width * 6.5)), fontsize=FONT_SIZE + 1, loc="left")
    ax.set_xlabel("time since start (s)", fontsize=FONT_SIZE)
    ax.set_ylabel("count", fontsize=FONT_SIZE)
    ax.tick_params(labelsize=FONT_SIZE - 2)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _peak(run: Run, connections: bool = True) -> float:
    names = [*run.watched, *run.gauges] + (["connections"] if connections else [])
    return max([1] + [run.peak(name) for name in names])


def draw_run(ax: Axes, run: Run, *, connections: bool = True, top: float | None = None) -> None:
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
    ax.legend(fontsize=FONT_SIZE - 3, loc="center right", framealpha=0.9)
    style_axes(ax, run.title)


Panel = tuple[str, Sequence[str]]
"""A y-axis label and the series drawn on that axis (watched functions, gauges, or probe fields)."""

MAX_LABELLED_EVENTS = 8


def draw_panel(ax: Axes, run: Run, panel: Panel, colours: Sequence[str], *, labels: bool) -> None:
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
    ax.legend(fontsize=FONT_SIZE - 4, loc="upper left", framealpha=0.9)


def run_figure(run: Run, panels: Sequence[Panel] | None = None) -> Figure:
    """The run as one chart, or as stacked panels sharing the time axis (for series of different units)."""
    if not panels:
        fig = Figure(figsize=(11, 5), layout="constrained")
        draw_run(fig.add_subplot(), run)
        return fig
    fig = Figure(figsize=(11, 2.6 * len(panels) + 0.6), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    used = 0
    for i, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
        draw_panel(ax, run, panel, PALETTE[used:] + PALETTE[:used], labels=i == 0)
        used = (used + len(panel[1])) % len(PALETTE)
    axes[0].set_title(run.title, fontsize=FONT_SIZE + 1, loc="left")
    axes[-1].set_xlabel("time since start (s)", fontsize=FONT_SIZE)
    return fig


def compare_figure(runs: Sequence[Run]) -> Figure:
    """Runs side by side on one figure, with a shared y axis: before and after, or one per backend."""
    fig = Figure(figsize=(6 * len(runs), 5), layout="constrained")
    axes = fig.subplots(1, len(runs), sharey=True, squeeze=False)[0]
    top = max(_peak(run) for run in runs)
    for ax, run in zip(axes, runs, strict=True):
        draw_run(ax, run, top=top)
    return fig


def png(fig: Figure, dpi: int = 80) -> bytes:
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
