"""Every notebook on the other Pythons learners have, run in the background while the rest of the suite runs.

The Pythons: Debian's python3 and the newest CPython 3.12 and 3.13 on this machine (the rest of the suite runs on
the Python of the lab's own environment). Each gets the lab's environment exactly as ``python3 -m helpers`` makes it
(``LAB_VENV`` points it into the lab's cache, one per interpreter; it reinstalls when what pyproject.toml says to
install changes). Each
notebook then runs top to bottom, headless, in a fresh kernel of that Python.

Those runs are mostly waiting (on timeouts, on servers), so they start with the test session, in a process of their own
(``start``, called by ``conftest.py``), three notebooks at a time, and ``tests/notebooks/test_pythons.py`` only reads
their results at the end: the other Pythons cost the suite their CPU time, not their wall time. Each result is one JSON
file in the session's folder of executed notebooks (``tests.support.executed``).

    python -m tests.support.other_pythons FOLDER   # what ``start`` runs in the background
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from helpers import pythons
from helpers.notebook_runner import NOTEBOOKS, notebook_paths
from helpers.timemachine import cache_dir

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "pythons"
SETUP_TIMEOUT = 900.0
"""Seconds ``python3 -m helpers`` may take to install the lab for one Python (2 to 3 minutes from the index)."""
NOTEBOOK_TIMEOUT = 600.0
SUBFOLDER = "other-pythons"
"""The background runs' folder, in the session's folder of executed notebooks."""
AT_ONCE = 3
"""Notebooks running at once in the background, all Pythons together (the suite's own workers run beside them)."""
STACK_NOTEBOOKS = ("10_production_proxy_redis", "11_production_heavy_sender", "09_production_deploys", "07_at_scale")
"""The notebooks that start many server processes or clients: in the background, at most ``STACKS_AT_ONCE`` of them
at a time and never one on two Pythons at once (it used to run notebook 11 on three Pythons at once, beside the
suite's own run of it)."""
STACKS_AT_ONCE = 2

WANTED = {
    "debian-python3": "Debian's python3 (what a Debian 12 JupyterHub runs)",
    "cpython-3.12": "the newest CPython 3.12 here",
    "cpython-3.13": "the newest CPython 3.13 here",
}
RUNNER = r"""
import json, sys
from pathlib import Path
import nbformat
from helpers.notebook_runner import execute
run = execute(Path(sys.argv[1]), timeout=300, final_frames_only=True)   # no one watches: last frames only
nbformat.write(run.notebook, sys.argv[2])
print(json.dumps({"seconds": run.seconds, "failure": str(run.failure) if run.failure else None,
                  "kernel_python": run.notebook.metadata.get("language_info", {}).get("version")}))
"""


def interpreter(wanted: str) -> pythons.Interpreter | str:
    """The interpreter ``wanted`` names, or why there is none to run the notebooks on here."""
    if wanted == "debian-python3":
        if not Path("/etc/debian_version").exists():
            return "this machine is not Debian"
        found = pythons.describe(Path("/usr/bin/python3"), "Debian's")
    else:
        major, minor = wanted.removeprefix("cpython-").split(".")
        found = pythons.newest_of((int(major), int(minor)))
    if found is None:
        return f"{WANTED[wanted]} is not installed"
    return found


def is_the_suites_own(python: pythons.Interpreter) -> bool:
    own = pythons.describe(sys.executable)
    return own is not None and python.version == own.version


def lab_environment(python: pythons.Interpreter) -> Path:
    """The lab's environment for ``python``, made (or brought up to date) by ``python -m helpers`` itself."""
    home = cache_dir() / "stacks" / f"lab-python{python.version}"
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.with_name(home.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one set-up at a time per Python, across test sessions
        done = subprocess.run([str(python.path), "-m", "helpers", "test", "--version"], cwd=ROOT,
                              env={**os.environ, "LAB_VENV": str(home)}, capture_output=True, text=True,
                              timeout=SETUP_TIMEOUT)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"python3 -m helpers could not set up the lab for Python {python.label}: {last}")
    return home / "bin" / "python"


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data))
    partial.replace(path)  # a reader never sees half a file


def _run_notebook(lab_python: Path, python: pythons.Interpreter, path: Path, result: Path) -> None:
    saved = ARTIFACTS / python.version / path.name
    saved.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        done = subprocess.run([str(lab_python), "-c", RUNNER, str(path), str(saved)], cwd=NOTEBOOKS,
                              capture_output=True, text=True, timeout=NOTEBOOK_TIMEOUT)
    except subprocess.TimeoutExpired:
        _write(result, {"error": f"the run did not end within {NOTEBOOK_TIMEOUT:.0f} s"})
        return
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        _write(result, {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]})
        return
    found = json.loads(lines[-1])
    if found["failure"] is None:
        saved.unlink()  # kept only when it failed
    _write(result, {**found, "saved": str(saved), "wall": time.monotonic() - started})


def run_order(paths: list[Path]) -> list[Path]:
    """The order the background runs take the notebooks in: the lab's. Taking the stack notebooks first (10 and 11
    from the suite's start) ran them beside the two-learners test's 09 to 11 (tests/classroom/test_two_learners.py):
    two of the clean-clone runs of 2026-12-07 that did so failed notebook 11 there (uvicorn's firehose handlers, 1
    or 2 of 3 still blocked in a send at the reading), at five and at six test workers."""
    return list(paths)


def run_all(folder: Path) -> None:
    """Set up every wanted Python found here and run every notebook on each, ``AT_ONCE`` at a time: a Python's
    notebooks start as soon as its own environment is ready."""
    found = {wanted: interpreter(wanted) for wanted in WANTED}
    ready: dict[str, tuple[pythons.Interpreter, Path]] = {}
    order = run_order(notebook_paths())
    pending: list[tuple[str, Path]] = []
    taking, stacks_running, setting_up = threading.Lock(), set[str](), set(WANTED)

    def set_up(wanted: str) -> None:
        try:
            python = found[wanted]
            if isinstance(python, str):
                _write(folder / wanted / "python.json", {"missing": python})
                return
            if is_the_suites_own(python):
                _write(folder / wanted / "python.json", {"same": f"{python.label} is the Python the suite runs on"})
                return
            try:
                environment = lab_environment(python)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                _write(folder / wanted / "python.json", {"error": str(error)})
                return
            except Exception as error:  # noqa: BLE001 - this Python's tests report it, and the other Python runs on
                failed = f"setting up failed: {type(error).__name__}: {error}"
                _write(folder / wanted / "python.json", {"error": failed})
                return
            _write(folder / wanted / "python.json", {"version": python.version, "label": python.label})
            with taking:
                ready[wanted] = (python, environment)
                pending.extend((wanted, path) for path in order)
                pending.sort(key=lambda run: order.index(run[1]))  # the Pythons' runs of a notebook side by side
        finally:
            with taking:
                setting_up.discard(wanted)

    def next_run() -> tuple[str, Path] | None:
        """The first pending notebook that may start now (see ``STACK_NOTEBOOKS``); None: nothing is left."""
        while True:
            with taking:
                if not pending and not setting_up:
                    return None
                for index, (wanted, path) in enumerate(pending):
                    heavy = path.stem in STACK_NOTEBOOKS
                    if heavy and (path.stem in stacks_running or len(stacks_running) >= STACKS_AT_ONCE):
                        continue
                    if heavy:
                        stacks_running.add(path.stem)
                    del pending[index]
                    return wanted, path
            time.sleep(0.5)  # a Python is still being set up, or only stack notebooks are left and enough run

    def work() -> None:
        while (taken := next_run()) is not None:
            wanted, path = taken
            try:
                _run_notebook(ready[wanted][1], ready[wanted][0], path, folder / wanted / f"{path.stem}.json")
            finally:
                with taking:
                    stacks_running.discard(path.stem)

    threads = [threading.Thread(target=set_up, args=(wanted,), name=f"set-up-{wanted}") for wanted in WANTED]
    threads += [threading.Thread(target=work, name=f"other-pythons-{n}") for n in range(AT_ONCE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


_started: dict[int, subprocess.Popen[bytes]] = {}
"""The runners this process started, by pid: kept until ``stop`` reaps them (a Popen dropped while its process runs
prints a ResourceWarning, "subprocess ... is still running", in the middle of pytest's output)."""


def start(folder: Path) -> None:
    """Start the background runs for this session, once (later calls find them started)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "pid").exists():
            return
        with open(folder / "runner.log", "w") as log:
            process = subprocess.Popen([sys.executable, "-m", "tests.support.other_pythons", str(folder)], cwd=ROOT,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _started[process.pid] = process
        (folder / "pid").write_text(str(process.pid))


def _alive(pid: int) -> bool:
    """Running, not exited (a finished process its parent has not reaped yet is a zombie, "Z")."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def selected(config: Any) -> bool:
    """Whether this pytest session will likely run ``tests/notebooks/test_pythons.py``: the whole suite, its folder, or
    that file named, with no ``-k``/``-m`` selection (then a test that needs the runs starts them itself)."""
    if config.option.collectonly or hasattr(config, "workerinput") or config.option.keyword or config.option.markexpr:
        return False
    here = Path(config.invocation_params.dir)
    wanted = {ROOT, ROOT / "tests", ROOT / "tests" / "notebooks", ROOT / "tests" / "notebooks" / "test_pythons.py"}
    return any((here / str(arg).split("::")[0]).resolve() in wanted for arg in config.args)


def stop(folder: Path) -> None:
    """End the background runs if they are still going (the session is over)."""
    pid_file = folder / "pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    if _alive(pid):
        os.killpg(pid, signal.SIGTERM)
    if pid in _started:
        _started.pop(pid).wait()  # this session's main process started it: reap it
        return
    with contextlib.suppress(ChildProcessError):  # not this process's child
        os.waitpid(pid, 0)


def result(folder: Path, name: str, *, timeout: float) -> dict[str, Any]:
    """The JSON file ``name`` of the background runs, once written; a RuntimeError if they ended without it."""
    path = folder / name
    deadline = time.monotonic() + timeout
    pid_file = folder / "pid"
    while not path.exists():
        if pid_file.exists() and not _alive(int(pid_file.read_text())) and not path.exists():
            log = (folder / "runner.log").read_text().strip().splitlines() if (folder / "runner.log").exists() else []
            raise RuntimeError(f"the background runs ended without {name}: {(log or ['no output'])[-1]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {name} within {timeout:.0f} s")
        time.sleep(1.0)
    return dict(json.loads(path.read_text()))


if __name__ == "__main__":
    run_all(Path(sys.argv[1]))
