import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.apps import fixed, leaks, seed
from tests.notebook_kernel import NOTEBOOKS, code_cells, notebook_paths

from helpers import timemachine

FOUNDATION_BUDGET = 30  # seconds, for 00 and 01
LESSON_BUDGET = 45
FIRST_BUILD_ALLOWANCE = 120  # the time machine's first install of its historical stacks


def budget(path: Path) -> float:
    if path.stem in ("00_start_here", "01_predict"):
        return FOUNDATION_BUDGET
    if path.stem == "02_reproduce" and not all(map(timemachine.is_cached, timemachine.STACKS)):
        return LESSON_BUDGET + FIRST_BUILD_ALLOWANCE
    return LESSON_BUDGET


def test_there_are_notebooks_to_test():
    assert [p.name for p in notebook_paths()][:5] == [
        "00_start_here.ipynb", "01_predict.ipynb", "02_reproduce.ipynb", "03_real_leaks.ipynb", "04_the_fix.ipynb",
    ]


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_the_notebook_runs_top_to_bottom_in_a_fresh_kernel_within_budget(path: Path):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    allowed = budget(path)
    start = time.monotonic()
    client.execute()
    took = time.monotonic() - start
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert took < allowed, f"{path.name} took {took:.1f} s (budget {allowed:.0f} s)"


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_the_notebook_is_committed_without_outputs(path: Path):
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_the_notebook_opens_with_objectives_and_time_and_closes_with_a_takeaway(path: Path):
    cells = nbformat.read(path, as_version=4).cells
    assert "**Time:**" in cells[0].source and "**You will be able to**" in cells[0].source
    assert any("## Takeaway" in c.source for c in cells[-2:])


def _definition(text: str, name: str) -> str:
    match = re.search(rf"^((?:async def|def|class) {name}\b.*?)(?=^\S|\Z)", text, re.S | re.M)
    assert match, name
    return match.group(1).strip()


IN_STEP = [
    ("01_predict", seed, name) for name in ("get_metrics", "get_metrics_fixed")
] + [
    ("03_real_leaks", leaks, name)
    for name in ("prices", "publish", "heartbeat", "keep_warm", "alerts", "chat", "ConnectionManager", "room", "stubborn")
] + [
    ("04_the_fix", fixed, name)
    for name in ("client_gone", "run_with_receiver", "broadcast", "prices", "forward", "beat", "heartbeat", "alerts",
                 "chat", "room", "push_metrics", "stream")
]


@pytest.mark.parametrize(("notebook", "module", "name"), IN_STEP, ids=lambda v: getattr(v, "__name__", v))
def test_the_endpoints_a_notebook_shows_are_the_ones_helpers_apps_holds(notebook, module, name):
    shown = "\n".join(code_cells(NOTEBOOKS / f"{notebook}.ipynb"))
    assert _definition(shown, name) == _definition(Path(module.__file__).read_text(), name)
