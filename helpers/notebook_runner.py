"""Running the lab's notebooks headless, for the tests, the benchmark and the stress script.

One place knows where the notebooks are, how a notebook is executed top to bottom in a fresh
kernel, and how a failure is named: the cell, its first line, and the assertion that failed.
Nothing here is imported by a notebook.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from traitlets.config import Config

from helpers.frames import FINAL_FRAMES_ONLY

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TRANSPORT_ENCRYPTION = "auto"
"""Kernels get CurveZMQ keys from their manager (ipykernel declares support): their messages are encrypted,
and ipykernel has no "Kernel is running over TCP without encryption" warning to print."""
ANSI = re.compile(r"\x1b\[[0-9;]*m")

TIMING_LINE = re.compile(r"(?P<value>-?\d+(?:\.\d+)?) s \((?P<kind>limit|at least) (?P<limit>\d+(?:\.\d+)?) s\)")
"""How a notebook prints a time it asserts: ``1.23 s (limit 2.30 s)`` or ``1.23 s (at least 1.00 s)``."""


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def notebook_path(name: str) -> Path:
    """``03``, ``03_real_leaks`` or ``03_real_leaks.ipynb`` -> the notebook's path."""
    found = [p for p in notebook_paths() if p.name == name or p.stem == name or p.stem.startswith(f"{name}_")]
    if len(found) != 1:
        raise ValueError(f"No single notebook matches {name!r}; choose one of {[p.stem for p in notebook_paths()]}.")
    return found[0]


def code_cells(path: Path) -> list[str]:
    return [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


@dataclass(frozen=True)
class Failure:
    """The first failing cell of a notebook run, named so a reader finds it without a traceback."""

    cell: int
    """The index of the failing cell in the notebook (markdown cells included, as JupyterLab counts)."""
    first_line: str
    error: str
    """The exception's type and message, e.g. ``AssertionError: 0 left``."""
    line: str
    """The source line that raised, when the traceback names one (the ``assert ...`` line)."""

    def __str__(self) -> str:
        where = f"cell {self.cell} ({self.first_line!r})"
        return f"{where}: {self.error}" + (f" at `{self.line}`" if self.line else "")


@dataclass(frozen=True)
class Margin:
    """A time a notebook asserted, with its limit: ``spare`` is the fraction of the limit left unused."""

    value: float
    limit: float
    kind: str

    @property
    def spare(self) -> float:
        if self.kind == "limit":
            return (self.limit - self.value) / self.limit if self.limit else 0.0
        return (self.value - self.limit) / self.limit if self.limit else 0.0


@dataclass
class Execution:
    """One headless run of a notebook: its time, its first failure if any, and the timing margins it printed."""

    path: Path
    seconds: float
    failure: Failure | None
    notebook: nbformat.NotebookNode
    margins: list[Margin] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.failure is None


def _failure(notebook: nbformat.NotebookNode, error: BaseException | None) -> Failure | None:
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                traceback = [ANSI.sub("", line) for line in output.get("traceback", [])]
                raised = ""
                for block in traceback:
                    for text in block.splitlines():
                        if text.lstrip().startswith("---->") or text.lstrip().startswith("->"):
                            raised = text.split(">", 1)[1].strip().lstrip("0123456789 ").strip()
                message = f"{output.get('ename')}: {output.get('evalue')}".rstrip(": ")
                return Failure(index, (cell.source.splitlines() or [""])[0], message, raised)
    if error is not None:
        return Failure(-1, "", f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}", "")
    return None


def margins(notebook: nbformat.NotebookNode) -> list[Margin]:
    """Every time the notebook printed in the ``TIMING_LINE`` form."""
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            for match in TIMING_LINE.finditer(text):
                found.append(Margin(float(match["value"]), float(match["limit"]), match["kind"]))
    return found


def execute(path: Path, *, timeout: float = 300, on_kernel_started: Callable[[int], None] | None = None,
            final_frames_only: bool = False) -> Execution:
    """Run the notebook top to bottom in a fresh kernel; a failing cell is reported, not raised.

    ``on_kernel_started`` receives the kernel's process id before the first cell runs (the stress script
    pins it to a CPU and caps its memory there). ``final_frames_only``: live figures draw only their last
    frame, for a run no one watches (``helpers.frames``); a learner's kernel, and the stress script's, draw them all.
    """
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            config=Config({"KernelManager": {"transport_encryption": TRANSPORT_ENCRYPTION}}))
    if on_kernel_started is not None:
        def started(**_: object) -> None:
            on_kernel_started(client.km.provisioner.process.pid)  # type: ignore[union-attr]
        client.on_notebook_start = started
    error: BaseException | None = None
    start = time.monotonic()
    try:
        client.execute(**({"env": {**os.environ, FINAL_FRAMES_ONLY: "1"}} if final_frames_only else {}))
    except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError) as raised:
        error = raised
    seconds = time.monotonic() - start
    return Execution(path, seconds, _failure(notebook, error), notebook, margins(notebook))
