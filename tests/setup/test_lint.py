"""Style and types are part of the test command: ruff and mypy, as configured in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing_to_fix():
    done = _run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_no_type_error_in_the_helpers_the_checker_or_the_tests():
    done = _run("mypy")  # the paths and the strictness are pyproject.toml's [tool.mypy]
    assert done.returncode == 0, done.stdout + done.stderr
