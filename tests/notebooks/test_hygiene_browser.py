"""In JupyterLab, a failing notebook is named at once, and a traceback shown under any cell is seen by the tests."""

from __future__ import annotations

import nbformat

from tests.support.browser_session import lab_session, require_browser
from tests.support.executed import lab_group

LATE_TRACEBACK = '''import sys, threading
threading.Timer(0.5, lambda: print("Traceback (most recent call last):\\nRuntimeError: late",
                                   file=sys.stderr)).start()'''


def _notebook(name: str, *sources: str) -> str:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A lesson")])
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, lab_session().root / name)
    return name


@lab_group(1)   # uses that worker's JupyterLab
def test_a_failing_cell_is_named_without_waiting_for_the_cells_after_it():
    require_browser()
    name = _notebook("failing.ipynb", "left_behind = 3",
                     "# count\nassert left_behind == 0, f'{left_behind} left behind'",
                     "import time\n"
                     "time.sleep(3600)  # would hold the harness until its timeout if it waited for every prompt")
    run = lab_session().run_notebook(name)
    assert run.failure == "code cell 2 ('# count') raised AssertionError: 3 left behind"


@lab_group(1)   # uses that worker's JupyterLab
def test_a_traceback_printed_under_an_earlier_cell_is_collected():
    require_browser()
    name = _notebook("stray.ipynb", LATE_TRACEBACK, "import time\ntime.sleep(2)")
    run = lab_session().run_notebook(name)
    assert run.failure is None
    (stray,) = run.stray  # shown under the cell running when it arrived, which did not raise it
    assert stray.startswith("under code cell ") and stray.endswith(": RuntimeError: late")
