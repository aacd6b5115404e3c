"""The time machine: historical stacks, and what it says when it cannot install them (a room with no network)."""

from __future__ import annotations

import concurrent.futures
import fcntl
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import timemachine
from tests.support.notebook_kernel import NOTEBOOKS

UNREACHABLE_INDEX = "http://127.0.0.1:9/simple"   # loopback, nothing listens on the discard port


@pytest.fixture
def no_package_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty stack cache and a package index that refuses every connection."""
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)   # no extra index or wheel folder from this machine's pip.conf
    monkeypatch.setenv("PIP_INDEX_URL", UNREACHABLE_INDEX)
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("CI", raising=False)
    return tmp_path


def test_with_no_package_index_the_time_machine_says_the_index_cannot_be_reached(no_package_index: Path):
    stack = next(iter(timemachine.STACKS))
    with pytest.raises(timemachine.TimeMachineUnavailable) as raised:
        timemachine.environment(stack)
    assert str(raised.value).startswith("The package index cannot be reached from here")
    assert "No matching distribution" in str(raised.value) or "from versions" in str(raised.value)
    assert not timemachine.is_cached(stack)


@pytest.mark.fast
def test_an_install_failure_with_a_reachable_index_names_the_pins_not_the_network():
    stack = next(iter(timemachine.STACKS))
    message = timemachine.install_failure(stack, "ERROR: Cannot install fastapi because these package versions "
                                                 "have conflicting dependencies.")
    assert message.startswith(f"Could not install {stack}") and "fastapi==" in message
    assert "index cannot be reached" not in message


def test_an_install_that_outlasts_its_limit_is_reported_as_unavailable_not_as_a_timeout_traceback(
    no_package_index: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(timemachine, "INSTALL_TIMEOUT", 0.01)
    with pytest.raises(timemachine.TimeMachineUnavailable, match="took longer than"):
        timemachine.environment(next(iter(timemachine.STACKS)))


@pytest.mark.fast
def test_a_second_request_for_an_environment_being_built_waits_and_then_uses_it(tmp_path: Path):
    home, pins = tmp_path / "stacks" / "shared", ("fastapi==0.1",)
    home.mkdir(parents=True)
    with open(home.with_name("shared.lock"), "w") as lock:   # the first builder holds the lock
        fcntl.flock(lock, fcntl.LOCK_EX)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            second = pool.submit(timemachine.build_environment, home, pins, name="shared")
            assert not second.done() and not _wait(second, 0.3)
            (home / "bin").mkdir()
            (home / "bin" / "python").touch()
            (home / ".installed").write_text(" ".join(pins))   # the first builder finishes
            fcntl.flock(lock, fcntl.LOCK_UN)
            assert second.result(timeout=30) == home / "bin" / "python"
    assert (home / "bin" / "python").stat().st_size == 0   # found installed: nothing was rebuilt


def _wait(future: concurrent.futures.Future[Any], seconds: float) -> bool:
    concurrent.futures.wait([future], timeout=seconds)
    return future.done()


@pytest.mark.fast
def test_the_results_recorded_with_the_lab_cover_notebook_02s_cases_with_their_date_and_versions():
    recorded = timemachine.recorded()
    assert [(r.stack, r.backend, r.way) for r in recorded.reports] == timemachine.notebook_cases()
    assert recorded.date[:2] == "20" and recorded.python.startswith("3.")
    old, older = timemachine.STACKS
    assert {r.versions["uvicorn"] for r in recorded.reports if r.stack == old} == {"0.52.0"}
    assert {r.versions["uvicorn"] for r in recorded.reports if r.stack == older} == {"0.24.0"}


def test_notebook_02_runs_with_no_package_index_and_labels_the_history_as_recorded(no_package_index: Path):
    notebook = nbformat.read(NOTEBOOKS / "02_reproduce.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "The package index cannot be reached from here" in printed
    assert "Results RECORDED with the lab on" in printed
    assert "measured here, now" not in printed
