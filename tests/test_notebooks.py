import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.apps import seed
from tests.notebook_kernel import NOTEBOOKS, code_cells, notebook_paths

BUDGET_SECONDS = 30


def test_there_are_notebooks_to_test():
    assert [p.name for p in notebook_paths()][:2] == ["00_start_here.ipynb", "01_predict.ipynb"]


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_the_notebook_runs_top_to_bottom_in_a_fresh_kernel_within_budget(path: Path):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.monotonic()
    client.execute()
    took = time.monotonic() - start
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert took < BUDGET_SECONDS, f"{path.name} took {took:.1f} s"


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


def _function_source(text: str, name: str) -> str:
    match = re.search(rf"^(async def {name}\(.*?)(?=^\S|\Z)", text, re.S | re.M)
    assert match, name
    return match.group(1).strip()


@pytest.mark.parametrize("name", ["get_metrics", "get_metrics_fixed"])
def test_the_seed_endpoints_shown_in_01_are_the_ones_the_tests_use(name):
    notebook = "\n".join(code_cells(NOTEBOOKS / "01_predict.ipynb"))
    module = Path(seed.__file__).read_text()
    assert _function_source(notebook, name) == _function_source(module, name)
