import functools
import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

from helpers.apps import dashboard, fixed, leaks, seed
from tests.notebook_kernel import NOTEBOOKS, TRANSPORT_ENCRYPTION, code_cells, first_error, notebook_paths

from helpers import browser, timemachine
from tests.conftest import lab_session

FOUNDATION_BUDGET = 30  # seconds, for 00 and 01
LESSON_BUDGET = 45
SCALE_BUDGET = 60  # 06_at_scale: 2,000 sessions
FIRST_BUILD_ALLOWANCE = 120  # the time machine's first install of its historical stacks


def budget(path: Path) -> float:
    if path.stem in ("00_start_here", "01_predict"):
        return FOUNDATION_BUDGET
    if path.stem == "06_at_scale":
        return SCALE_BUDGET
    if path.stem == "02_reproduce" and not all(map(timemachine.is_cached, timemachine.STACKS)):
        return LESSON_BUDGET + FIRST_BUILD_ALLOWANCE
    return LESSON_BUDGET


def test_there_are_notebooks_to_test():
    assert [p.name for p in notebook_paths()][:9] == [
        "00_start_here.ipynb", "01_predict.ipynb", "02_reproduce.ipynb", "03_real_leaks.ipynb", "04_the_fix.ipynb",
        "05_exercises.ipynb", "05_solutions.ipynb", "06_at_scale.ipynb", "07_browser.ipynb",
    ]


@functools.cache
def executed(path: Path) -> tuple[nbformat.NotebookNode, float, float]:
    """The notebook run top to bottom in a fresh kernel, with its time and its budget, once per test session:
    in JupyterLab in Chromium where a browser is available (always in CI), else headless with nbclient."""
    allowed = budget(path)
    if browser.unavailable_reason() is None:
        run = lab_session().run_notebook(path.name)
        if run.failure:
            pytest.fail(f"In JupyterLab, {path.name} stopped at {run.failure}", pytrace=False)
        return nbformat.read(run.saved, as_version=4), run.seconds, allowed
    notebook = nbformat.read(path, as_version=4)
    start = time.monotonic()
    run_headless(notebook)
    return notebook, time.monotonic() - start, allowed


def run_headless(notebook: nbformat.NotebookNode, timeout: float = 300) -> None:
    """Execute in place with nbclient; a failing cell is named (number, first line, error), not dumped."""
    config = Config({"KernelManager": {"transport_encryption": TRANSPORT_ENCRYPTION}})
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", config=config,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
    except CellExecutionError:
        pytest.fail(f"The notebook stopped at {first_error(notebook)}", pytrace=False)


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_the_notebook_runs_top_to_bottom_in_a_fresh_kernel_within_budget(path: Path):
    notebook, took, allowed = executed(path)
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert took < allowed, f"{path.name} took {took:.1f} s (budget {allowed:.0f} s)"


def check_outputs(path: Path) -> list[str]:
    notebook, _, _ = executed(path)
    return [
        output["data"]["text/markdown"]
        for cell in notebook.cells if cell.cell_type == "code" and cell.source.startswith("check_exercise(")
        for output in cell.outputs if "text/markdown" in output.get("data", {})
    ]


def test_every_exercise_check_rejects_the_starting_code_with_a_hint():
    feedback = check_outputs(NOTEBOOKS / "05_exercises.ipynb")
    assert len(feedback) == 4
    assert all(text.startswith(("Not yet", "Almost")) and "Hint: " in text and "notebook 03" in text for text in feedback)


def test_every_exercise_check_accepts_the_solution():
    feedback = check_outputs(NOTEBOOKS / "05_solutions.ipynb")
    assert len(feedback) == 4
    assert all(text.startswith("Passed") for text in feedback), feedback


def test_exercises_and_solutions_differ_only_in_the_exercise_cells():
    exercises = nbformat.read(NOTEBOOKS / "05_exercises.ipynb", as_version=4).cells
    solutions = nbformat.read(NOTEBOOKS / "05_solutions.ipynb", as_version=4).cells
    assert len(exercises) == len(solutions)
    differing = [e.source.splitlines()[0] for e, s in zip(exercises[1:], solutions[1:]) if e.source != s.source]
    assert differing == ["# EXERCISE 1", "# EXERCISE 2", "# EXERCISE 3", "# EXERCISE 4"]


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
] + [
    ("07_browser", dashboard, name) for name in ("read_metrics", "push_metrics", "metrics", "metrics_leaky")
]


@pytest.mark.parametrize(("notebook", "module", "name"), IN_STEP, ids=lambda v: getattr(v, "__name__", v))
def test_the_endpoints_a_notebook_shows_are_the_ones_helpers_apps_holds(notebook, module, name):
    shown = "\n".join(code_cells(NOTEBOOKS / f"{notebook}.ipynb"))
    assert _definition(shown, name) == _definition(Path(module.__file__).read_text(), name)
