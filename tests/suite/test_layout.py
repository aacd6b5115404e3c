"""The suite's layout: one folder per part of the code, what tests share in ``tests/support``, and no test module
importing another (a test file is something pytest runs, not a library)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast  # every test here is pure: no process, no server

TESTS = Path(__file__).resolve().parents[1]
SUPPORT = TESTS / "support"
PROJECTS = (SUPPORT / "zoo_project",)
"""Projects of their own that the checker's tests run it on; they import their own packages."""


def _modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if not any(p.is_relative_to(project) for project in PROJECTS))


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (lazy imports inside functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _is_test_module(name: str) -> bool:
    return name.startswith("tests.") and (name.rsplit(".", 1)[-1].startswith("test_") or name == "tests.conftest")


def test_no_module_of_the_suite_imports_a_test_module_or_the_conftest():
    found = {str(path.relative_to(TESTS)): sorted(n for n in _imported(path) if _is_test_module(n))
             for path in _modules()}
    assert {path: names for path, names in found.items() if names} == {}


def test_no_module_of_the_suite_uses_a_relative_import():
    relative = [str(path.relative_to(TESTS)) for path in _modules()
                if any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(ast.parse(path.read_text())))]
    assert relative == []


def test_every_test_module_sits_in_the_folder_of_the_part_it_tests_and_support_holds_none():
    test_files = sorted(TESTS.rglob("test_*.py"))
    assert test_files
    assert [p.name for p in test_files if p.parent == TESTS] == []
    assert [p.name for p in test_files if p.is_relative_to(SUPPORT)] == []


def test_every_folder_of_tests_is_a_package_so_that_test_modules_of_the_same_name_do_not_collide():
    folders = {p.parent for p in TESTS.rglob("test_*.py")} | {SUPPORT}
    assert sorted(str(f.relative_to(TESTS)) for f in folders if not (f / "__init__.py").exists()) == []
