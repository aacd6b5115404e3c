import ast
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

from helpers.apps import dashboard, fixed, heavy_sender, leaks, production, production_redis, seed
from tests.support.executed import executed, lab_group, notebook_params
from tests.support.notebook_kernel import NOTEBOOKS, TRANSPORT_ENCRYPTION, code_cells, first_error, notebook_paths


@pytest.mark.fast
def test_there_are_notebooks_to_test():
    assert [p.name for p in notebook_paths()] == [
        "00_start_here.ipynb", "01_predict.ipynb", "02_reproduce.ipynb", "03_real_leaks.ipynb", "04_the_fix.ipynb",
        "05_servers.ipynb", "06_exercises.ipynb", "06_solutions.ipynb", "07_at_scale.ipynb", "08_browser.ipynb",
        "09_production_deploys.ipynb", "10_production_proxy_redis.ipynb", "11_production_heavy_sender.ipynb",
    ]


@pytest.mark.parametrize("path", notebook_params(notebook_paths()))
def test_the_notebook_runs_top_to_bottom_in_a_fresh_kernel(path: Path):
    notebook = executed(path).notebook
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


def check_outputs(path: Path) -> list[str]:
    notebook = executed(path).notebook
    return [
        output["data"]["text/markdown"]
        for cell in notebook.cells if cell.cell_type == "code" and cell.source.startswith("check_exercise(")
        for output in cell.outputs if "text/markdown" in output.get("data", {})
    ]


EXERCISES = 6


@lab_group(6)   # 06_exercises' group: it is executed there
def test_every_exercise_check_rejects_the_starting_code_with_a_hint():
    feedback = check_outputs(NOTEBOOKS / "06_exercises.ipynb")
    assert len(feedback) == EXERCISES
    assert all(text.startswith(("Not yet", "Almost")) and "Hint: " in text and re.search(r"notebook 0[34]", text)
               for text in feedback), feedback


@lab_group(7)   # 06_solutions' group
def test_every_exercise_check_accepts_the_solution_and_says_what_the_endpoint_did():
    feedback = check_outputs(NOTEBOOKS / "06_solutions.ipynb")
    assert len(feedback) == EXERCISES
    assert all(text.startswith("Passed: the endpoint did its job (") for text in feedback), feedback


@pytest.mark.fast
def test_exercises_and_solutions_differ_only_in_the_exercise_cells():
    exercises = nbformat.read(NOTEBOOKS / "06_exercises.ipynb", as_version=4).cells
    solutions = nbformat.read(NOTEBOOKS / "06_solutions.ipynb", as_version=4).cells
    assert len(exercises) == len(solutions)
    differing = [e.source.splitlines()[0] for e, s in zip(exercises[1:], solutions[1:], strict=True)
                 if e.source != s.source]
    assert differing == [line for n in range(1, EXERCISES + 1)
                         for line in (f"# EXERCISE {n}", f"#### Exercise {n}: why the fix works")]


@pytest.mark.fast
@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_the_notebook_is_committed_without_outputs(path: Path):
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.fast
@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_the_notebook_opens_with_objectives_and_time_and_closes_with_a_takeaway(path: Path):
    cells = nbformat.read(path, as_version=4).cells
    assert "**Time:**" in cells[0].source and "**You will be able to**" in cells[0].source
    assert any("## Takeaway" in c.source for c in cells[-2:])


def _definition(text: str, name: str) -> str:
    """The definition of ``name`` with its decorators (a route's path), up to the next unindented line."""
    match = re.search(rf"^((?:@[^\n]*\n)*(?:async def|def|class) {name}\b.*?)(?=^\S|\Z)", text, re.S | re.M)
    assert match, name
    return match.group(1).strip()


IN_STEP = [
    ("01_predict", seed, name) for name in ("get_metrics", "get_metrics_fixed")
] + [
    ("08_browser", dashboard, name)
    for name in ("get_metrics", "read_metrics", "push_metrics", "metrics", "metrics_leaky")
] + [
    ("10_production_proxy_redis", production, name) for name in ("metrics", "echo")
]


@pytest.mark.fast
@pytest.mark.parametrize(("notebook", "module", "name"), IN_STEP, ids=lambda v: getattr(v, "__name__", v))
def test_the_endpoints_a_notebook_shows_are_the_ones_helpers_apps_holds(notebook, module, name):
    shown = "\n".join(code_cells(NOTEBOOKS / f"{notebook}.ipynb"))
    assert _definition(shown, name) == _definition(Path(module.__file__).read_text(), name)


@pytest.mark.fast
def test_notebook_10_shows_the_interval_its_workers_send_at():
    shown = "\n".join(code_cells(NOTEBOOKS / "10_production_proxy_redis.ipynb"))
    assert f"\nMETRICS_INTERVAL = {production.METRICS_INTERVAL}\n" in shown


WHOLE_MODULE_IN_STEP = [
    ("03_real_leaks", leaks), ("04_the_fix", fixed), ("10_production_proxy_redis", production_redis),
    ("11_production_heavy_sender", heavy_sender),
]


def _statements(source: str) -> list[str]:
    """Top-level statements, normalised (comments and layout dropped), imports and docstrings left out."""
    tree = ast.parse(source)
    return [
        ast.unparse(node) for node in tree.body
        if not isinstance(node, (ast.Import, ast.ImportFrom))
        and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        and not (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"])
    ]


@pytest.mark.fast
@pytest.mark.parametrize(("notebook", "module"), WHOLE_MODULE_IN_STEP, ids=lambda v: getattr(v, "__name__", v))
def test_every_statement_of_the_app_module_is_shown_in_its_notebook(notebook, module):
    """Decorators (the route paths), constants (the intervals) and every definition, not only function bodies."""
    cells = [c for c in code_cells(NOTEBOOKS / f"{notebook}.ipynb") if not c.lstrip().startswith(("%", "!"))]
    shown = {statement for cell in cells for statement in _statements(cell)}
    missing = [s.splitlines()[0] for s in _statements(Path(module.__file__).read_text()) if s not in shown]
    assert not missing, f"in {module.__name__} but not in {notebook}: {missing}"


@pytest.mark.fast
def test_notebook_04_shows_the_pattern_module_itself_rather_than_a_copy():
    cells = code_cells(NOTEBOOKS / "04_the_fix.ipynb")
    assert any("inspect.getsource(pattern)" in cell for cell in cells)
    assert not any(re.search(r"^(async )?def (client_gone|run_with_receiver|broadcast)\b", c, re.M) for c in cells)


@pytest.mark.fast
@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_the_notebook_prints_its_versions_in_its_first_code_cell(path: Path):
    assert "show_versions()" in code_cells(path)[0]


@pytest.mark.fast
@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_the_lesson_ends_with_a_self_check_of_two_or_three_questions_that_say_where_to_look(path: Path):
    last = code_cells(path)[-1]
    assert "self_check(QUESTIONS, my_answers)" in last and "my_answers = {}" in last
    assert 2 <= last.count("Question(") <= 3 and last.count("where=") == last.count("Question(")
