"""The Pythons found on this machine (helpers.pythons) and notebook 09's deploys on each (experiments.interpreters)."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import pytest

from helpers import pythons
from helpers.experiments import interpreters
from helpers.experiments.deploys import Shutdown


def test_this_python_is_found_first():
    first = pythons.found()[0]
    assert first.path == Path(sys.executable)
    assert first.version == platform.python_version()
    assert first.where == pythons.KERNEL


def test_each_version_is_found_once():
    versions = [interpreter.version for interpreter in pythons.found()]
    assert len(versions) == len(set(versions))


def test_only_cpython_3_11_or_newer_is_kept(tmp_path: Path):
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\necho '{\"implementation\": \"CPython\", \"version\": \"3.9.18\", "
                   "\"prefix\": \"/\", \"base_prefix\": \"/\"}'\n")
    old.chmod(0o755)
    assert pythons.describe(old) is None


def test_a_file_that_is_not_a_python_is_not_found(tmp_path: Path):
    assert pythons.describe("/bin/true") is None
    assert pythons.describe(tmp_path / "missing") is None


def test_found_keeps_the_first_of_two_paths_to_one_version():
    same = [(Path(sys.executable), pythons.KERNEL), (Path(sys.executable).resolve(), "on PATH")]
    assert [i.where for i in pythons.found(same)] == [pythons.KERNEL]


@pytest.mark.fast
def test_one_per_minor_keeps_the_kernels_python_first_then_the_newest_patch_of_each_other_minor():
    def python(version: str, where: str = "pyenv's") -> pythons.Interpreter:
        return pythons.Interpreter(Path(f"/x/{version}"), version, where)

    kernel = python("3.11.7", pythons.KERNEL)
    found = [kernel, python("3.11.2", "Debian's"), python("3.12.0"), python("3.12.1"), python("3.13.0")]
    assert [i.version for i in pythons.one_per_minor(found)] == ["3.11.7", "3.12.1", "3.13.0"]
    assert pythons.one_per_minor([]) == []


@pytest.mark.fast
def test_a_pyenv_folder_this_user_may_not_read_holds_no_python_and_raises_nothing(monkeypatch, tmp_path: Path):
    (tmp_path / "versions").mkdir()
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))   # as runuser passes root's /root/.pyenv to another user

    def denied(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_dir", denied)
    assert all(where != "pyenv's" for _, where in pythons.candidates())


def test_a_python_without_venv_gets_the_debian_package_to_install():
    interpreter = pythons.Interpreter(Path("/usr/bin/python3"), "3.11.2", "Debian's")
    message = pythons._venv_failure(interpreter, "The virtual environment was not created successfully because "
                                                 "ensurepip is not available.")
    assert "sudo apt-get install python3.11-venv" in message and message.count(".") <= 4


def test_a_python_that_cannot_run_the_deploys_gives_a_row_saying_why_not_a_crash(tmp_path: Path):
    broken = tmp_path / "python3"
    broken.write_text("#!/bin/sh\necho 'no such interpreter' >&2\nexit 3\n")
    broken.chmod(0o755)
    row = interpreters.measure(pythons.Interpreter(broken, "3.12.9", "given"))
    assert not row.measured
    assert row.problem.startswith("asyncio's probe on Python 3.12.9 failed: no such interpreter")
    assert "not measured: " in interpreters.table([row])


def test_a_measurement_started_in_the_background_gives_its_rows_in_order(tmp_path: Path):
    broken = tmp_path / "python3"
    broken.write_text("#!/bin/sh\necho 'no such interpreter' >&2\nexit 3\n")
    broken.chmod(0o755)
    given = [pythons.Interpreter(broken, "3.12.9", "given"), pythons.Interpreter(broken, "3.13.9", "given")]
    measuring = interpreters.start(given)
    assert measuring.interpreters == given
    assert [row.version for row in measuring.result()] == ["3.12.9", "3.13.9"]


def test_a_measurement_started_again_while_it_runs_is_the_same_one(tmp_path: Path):
    slow = tmp_path / "python3"
    slow.write_text("#!/bin/sh\nsleep 1\necho 'no such interpreter' >&2\nexit 3\n")
    slow.chmod(0o755)
    given = [pythons.Interpreter(slow, "3.12.9", "given")]
    first, again = interpreters.start(given), interpreters.start(given)   # a cell run twice
    assert again is first
    first.result()
    assert interpreters.start(given) is not first   # once it has ended, a start measures afresh


def test_a_second_python_of_a_minor_version_gets_the_probe_and_no_deploys(tmp_path: Path):
    kernel = pythons.found()[0]
    same_minor = pythons.Interpreter(kernel.path, f"{kernel.minor[0]}.{kernel.minor[1]}.0", "given")
    row = interpreters.measure(same_minor, deploys=False)
    assert row.measured and row.wait_closed_returned is not None and row.hypercorn_leak is None
    assert "-: not deployed on that Python" in interpreters.table([row])


OTHERS = [python for python in pythons.found() if python.path != Path(sys.executable)]


@pytest.mark.skipif(not OTHERS, reason="no other CPython 3.11 or newer on this machine")
def test_another_python_found_here_runs_the_deploys_with_the_labs_own_code():
    row = interpreters.measure(OTHERS[-1], give_up_after=3.0)
    assert row.measured, row.problem
    assert row.hypercorn_leak is not None
    assert (row.hypercorn_leak.seconds is None) is (row.minor >= interpreters.WAITS_SINCE)


@pytest.mark.parametrize("python", pythons.found(), ids=lambda p: p.version)
def test_asyncio_wait_closed_waits_for_a_running_handler_from_python_3_12_on(python: pythons.Interpreter):
    done = interpreters._run_json([str(python.path), "-I", str(interpreters.PROBE)], 60, "the probe")
    assert done["python"] == python.version
    assert done["wait_closed_returned"] is (python.minor < pythons.WAIT_CLOSED_WAITS_SINCE)


@pytest.mark.fast
def test_recorded_rows_fill_only_the_minor_versions_not_measured_here():
    recording = interpreters.recorded()
    measured = interpreters.PythonRow("3.12.7", "given", interpreters.MEASURED, True, False)
    rows = interpreters.with_recorded([measured])
    assert rows[0] is measured
    assert {row.minor for row in rows[1:]} == {row.minor for row in recording.rows} - {(3, 12)}
    assert all(row.source == recording.source and not row.measured for row in rows[1:])


@pytest.mark.fast
def test_a_python_measured_with_a_problem_does_not_hide_its_recorded_row():
    failed = interpreters.PythonRow("3.13.0", "given", interpreters.MEASURED, problem="no index.")
    assert (3, 13) in {row.minor for row in interpreters.with_recorded([failed])[1:]}


@pytest.mark.fast
def test_the_recording_holds_every_minor_version_the_lab_tests_and_says_when_it_was_made():
    recording = interpreters.recorded()
    assert {row.minor for row in recording.rows} >= set(pythons.TESTED_MINORS)
    assert recording.label.startswith(f"RECORDED with the lab on {recording.date} (hypercorn ")
    table = interpreters.table(recording.rows)
    assert f"| RECORDED on {recording.date} |" in table and recording.label in table


@pytest.mark.fast
def test_the_recording_agrees_with_the_rule_notebook_09_asserts():
    for row in interpreters.recorded().rows:
        waits = row.minor >= interpreters.WAITS_SINCE
        assert isinstance(row.hypercorn_leak, Shutdown) and isinstance(row.uvicorn_timeout, Shutdown)
        assert (row.hypercorn_leak.seconds is None) is waits and row.wait_closed_returned is not waits
        assert row.uvicorn_timeout.seconds is not None


@pytest.mark.fast
def test_the_recording_names_no_kernel_of_its_own():
    data = json.loads(interpreters.RECORDED.read_text())
    assert all(row["where"] != pythons.KERNEL for row in data["rows"])
