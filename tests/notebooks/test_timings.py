"""The minutes a lesson announces agree with the README's lesson table and the instructor guide's."""

import re

import nbformat
import pytest

from helpers.notebook_runner import NOTEBOOKS
from tests.support.notebook_kernel import notebook_paths

pytestmark = pytest.mark.fast  # every test here is pure: no process, no server

ROOT = NOTEBOOKS.parent


def _readme_minutes() -> dict[str, int]:
    rows = re.findall(r"^\| \[`(\d\d_\w+)`\]\([^)]*\) \| (\d+)", (ROOT / "README.md").read_text(), re.M)
    return {name: int(minutes) for name, minutes in rows}


def _guide_minutes() -> dict[str, int]:
    rows = re.findall(r"^\| `(\d\d_\w+)`[^|]*\| (\d+) \|", (ROOT / "docs" / "instructor_guide.md").read_text(), re.M)
    return {name: int(minutes) for name, minutes in rows}


@pytest.mark.parametrize("path", [p for p in notebook_paths() if p.stem[:2] in {"00", "01", "02", "03", "04", "05"}],
                         ids=lambda p: p.stem)
def test_a_lesson_announces_the_minutes_the_readme_and_the_guide_give_it(path):
    first = nbformat.read(path, as_version=4).cells[0].source
    found = re.search(r"\*\*Time:\*\* about (\d+) minutes", first)
    assert found is not None, first
    announced = int(found.group(1))
    assert announced == _readme_minutes()[path.stem] == _guide_minutes()[path.stem]
