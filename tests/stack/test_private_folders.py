"""Where the stack keeps its processes' files: a folder only its learner can enter, cleaned by the next kernel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.stack.processes import TEMP_PREFIX, remove_stale_dirs, runtime_dir, temp_dir


@pytest.fixture
def short(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder with a short path: a Unix socket's whole path must fit in 107 characters."""
    folder = Path(tempfile.mkdtemp(prefix="lab-"))
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def cache(short: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("LAB_CACHE", str(short / "cache"))
    # the system's temporary folder, the last candidate, is this test's too: never the real ws-leak-lab-<uid>
    monkeypatch.setattr(tempfile, "tempdir", str(short))
    return short / "cache"


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.fast
def test_the_run_folder_is_in_the_learners_cache_and_theirs_alone(cache):
    folder = runtime_dir()
    assert folder == cache / "run"
    assert (folder.stat().st_mode & 0o777, folder.stat().st_uid) == (0o700, os.geteuid())


@pytest.mark.fast
def test_the_systems_runtime_folder_is_preferred_when_there_is_one(cache, short, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short / "xdg"))
    assert runtime_dir() == short / "xdg" / "ws-leak-lab"


@pytest.mark.fast
def test_a_cache_path_too_long_for_a_unix_socket_is_passed_over(cache, short, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(cache / ("long" * 20)))
    assert runtime_dir() == short / f"ws-leak-lab-{os.geteuid()}"


@pytest.mark.fast
def test_a_run_folder_open_to_others_is_closed_again(cache):
    (cache / "run").mkdir(parents=True, mode=0o755)
    (cache / "run").chmod(0o755)
    assert runtime_dir().stat().st_mode & 0o077 == 0


@pytest.mark.fast
@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_run_folder_that_another_user_owns_is_not_used(cache):
    (cache / "run").mkdir(parents=True, mode=0o700)
    os.chown(cache / "run", 65534, 65534)
    folder = runtime_dir()
    assert folder != cache / "run" and folder.stat().st_uid == os.geteuid()


@pytest.mark.fast
def test_a_component_folder_is_made_in_the_run_folder_named_after_the_kernel(cache):
    folder = temp_dir("redis")
    assert folder.parent == cache / "run" and folder.name.startswith(f"{TEMP_PREFIX}{os.getpid()}-redis-")


def test_the_next_kernel_removes_what_a_killed_one_left_and_says_so_in_one_line(cache, capsys):
    base = runtime_dir()
    pid = dead_pid()
    left = [base / f"{TEMP_PREFIX}{pid}-redis-abc", base / f"{TEMP_PREFIX}{pid}-nginx-def"]
    for folder in left:
        (folder / "inside").mkdir(parents=True)
    ours = base / f"{TEMP_PREFIX}{os.getpid()}-worker-ghi"
    ours.mkdir()

    assert sorted(remove_stale_dirs(base)) == sorted(left)
    said = capsys.readouterr().out.splitlines()
    expected = (f"Removed 2 folder(s) left in {base} by a kernel that ended without stopping its processes "
                f"(pid {pid}).")
    assert said == [expected]
    assert not any(folder.exists() for folder in left) and ours.exists()


@pytest.mark.fast
def test_nothing_is_said_when_nothing_was_left(cache, capsys):
    assert remove_stale_dirs(runtime_dir()) == []
    assert capsys.readouterr().out == ""
