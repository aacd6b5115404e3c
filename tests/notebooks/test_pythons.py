"""Every notebook passes on the other Pythons learners have: Debian's python3 and the newest CPython 3.12 and 3.13.

The notebooks run in the background from the start of the session (``tests/support/other_pythons.py``); these tests read
each result. Outside CI a Python this machine lacks is skipped; in CI (``CI=true``) it is a failure, as a missing
Chromium is.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import pythons
from tests.support import other_pythons
from tests.support.executed import FOLDER_VARIABLE
from tests.support.notebook_kernel import notebook_paths

ROOT = Path(__file__).resolve().parents[2]
WAIT = 3600.0
"""Seconds a test may wait for its notebook's result: every notebook on every Python, three at a time, on a loaded
machine, plus the first set-up of each Python's environment. A stuck run ends at its own limit before that."""


def _folder() -> Path:
    folder = Path(os.environ[FOLDER_VARIABLE]) / other_pythons.SUBFOLDER
    other_pythons.start(folder)  # already started with the session, unless this run named the tests otherwise
    return folder


def _python(folder: Path, wanted: str) -> dict[str, str]:
    found = other_pythons.result(folder, f"{wanted}/python.json", timeout=WAIT)
    if "missing" in found:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the notebooks on {other_pythons.WANTED[wanted]}, but {found['missing']}.")
        pytest.skip(f"No notebooks on {other_pythons.WANTED[wanted]}: {found['missing']}.")
    if "same" in found:
        pytest.skip(found["same"])
    if "error" in found:
        pytest.fail(found["error"], pytrace=False)
    return found


@pytest.mark.timeout(WAIT + 60)
@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
@pytest.mark.parametrize("wanted", list(other_pythons.WANTED))
def test_the_notebook_runs_top_to_bottom_on_another_python(wanted: str, path: Path):
    folder = _folder()
    python = _python(folder, wanted)
    result = other_pythons.result(folder, f"{wanted}/{path.stem}.json", timeout=WAIT)
    if "error" in result:
        pytest.fail(f"On Python {python['label']}, {path.name} could not run: {result['error']}", pytrace=False)
    assert result["kernel_python"] == python["version"]   # the kernel ran that Python (its language_info says so)
    if result["failure"] is not None:
        pytest.fail(f"On Python {python['label']}, {path.name} stopped at {result['failure']} "
                    f"(the executed notebook: {result['saved']})", pytrace=False)


@pytest.mark.fast
def test_the_pythons_the_notebooks_run_on_cover_the_minor_versions_the_lab_says_it_tests():
    newest = {tuple(int(p) for p in w.removeprefix("cpython-").split(".")) for w in other_pythons.WANTED
              if w.startswith("cpython-")}
    assert {(3, 11)} | newest == set(pythons.TESTED_MINORS)   # 3.11: Debian's python3 and the lab's own


@pytest.mark.fast
def test_the_readme_states_the_range_of_pythons_tested():
    readme = " ".join((ROOT / "README.md").read_text().split())
    first, last = pythons.TESTED_MINORS[0], pythons.TESTED_MINORS[-1]
    assert f"every notebook on CPython {first[0]}.{first[1]} to {last[0]}.{last[1]}: Debian's `python3`" in readme


@pytest.mark.fast
def test_only_a_session_that_may_run_these_tests_starts_the_background_runs(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    config = pytester.parseconfig(str(pytester.path))
    assert not other_pythons.selected(config)  # another project's tests
    config = pytester.parseconfig(str(ROOT / "tests" / "servers" / "test_server.py"))
    assert not other_pythons.selected(config)
    config = pytester.parseconfig(str(ROOT / "tests" / "notebooks" / "test_pythons.py") + "::test_the_readme_states_the_range")
    assert other_pythons.selected(config)
    config = pytester.parseconfig(str(ROOT / "tests"), "--co")
    assert not other_pythons.selected(config)
    config = pytester.parseconfig(str(ROOT / "tests"), "-k", "leakcheck")
    assert not other_pythons.selected(config)   # a test that needs the runs starts them


@pytest.mark.fast
def test_the_stack_notebooks_the_background_runs_one_at_a_time_are_notebooks_of_the_lab():
    assert set(other_pythons.STACK_NOTEBOOKS) <= {path.stem for path in notebook_paths()}


@pytest.mark.fast
def test_the_background_runs_take_every_notebook_once_in_the_labs_order():
    order = [path.stem for path in other_pythons.run_order(notebook_paths())]
    assert order == [path.stem for path in notebook_paths()]
