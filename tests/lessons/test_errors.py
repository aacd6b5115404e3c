"""The lab's exceptions form one hierarchy under ``helpers.errors.LabError`` (documented in helpers/errors.py)."""

import ast
import builtins
from pathlib import Path

import pytest

from helpers import errors

pytestmark = pytest.mark.fast  # pure: reads the package's source

HELPERS = Path(errors.__file__).parent
OUTSIDE_ON_PURPOSE = {"helpers.pattern.Dropped", "helpers.exercises.jobs.Refused"}
"""The two exceptions helpers/errors.py names as outside the hierarchy, and why."""
BUILTIN_EXCEPTIONS = {name for name, value in vars(builtins).items()
                      if isinstance(value, type) and issubclass(value, BaseException)}


def exceptions_on_builtins() -> set[str]:
    """Classes of the package (lesson apps aside) that subclass a built-in exception directly."""
    found = set()
    for path in HELPERS.rglob("*.py"):
        if "apps" in path.relative_to(HELPERS).parts:
            continue  # the endpoints under study, as learners write them
        module = ".".join(path.relative_to(HELPERS.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(base, ast.Name) and base.id in BUILTIN_EXCEPTIONS for base in node.bases):
                found.add(f"{module}.{node.name}")
    return found


def test_every_exception_of_the_lab_is_a_lab_error_but_the_two_kept_outside_on_purpose():
    assert exceptions_on_builtins() == {"helpers.errors.LabError", *OUTSIDE_ON_PURPOSE}


def test_each_lab_error_the_hierarchy_lists_subclasses_lab_error_and_is_named_in_its_docstring():
    kinds = [value for value in vars(errors).values()
             if isinstance(value, type) and issubclass(value, errors.LabError) and value is not errors.LabError]
    assert {k.__name__ for k in kinds} == {"PythonUnavailable", "TimeMachineUnavailable", "SetupError"}
    assert all(k.__name__ in (errors.__doc__ or "") for k in kinds)
