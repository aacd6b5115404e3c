"""Each notebook executed once per test run, by whichever test (in whichever test worker) asks first.

The notebook tests, the JupyterLab tests and the website's tests all read the same executed notebooks.
The suite runs in several worker processes (pytest-xdist), so the results are kept on disk, in a folder
the run's main process creates (``WS_LAB_EXECUTED``, see ``conftest.py``) and removes at the end. A lock
per notebook makes a second asker wait for the run in progress rather than start another.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

from helpers import browser
from tests.support.browser_session import lab_session
from tests.support.jupyterlab_session import BrowserRun
from tests.support.notebook_kernel import NOTEBOOKS, TRANSPORT_ENCRYPTION, first_error

FOLDER_VARIABLE = "WS_LAB_EXECUTED"
LAB_GROUPS = 2
"""JupyterLab runs the notebooks in this many test workers at most: each worker that needs a browser starts a
JupyterLab and a Chromium of its own, and on a 2-core machine more of them at once only slow each other down."""


LAB_GROUP_PREFIX = "lab-"


def lab_group(index: int) -> pytest.MarkDecorator:
    """The test worker group (pytest-xdist's ``--dist loadgroup``) of the ``index``-th test that uses JupyterLab."""
    return pytest.mark.xdist_group(f"{LAB_GROUP_PREFIX}{index % LAB_GROUPS}")


def notebook_params(paths: list[Path]) -> list[object]:
    """One parameter per notebook, in the group that executes it, so that every test of a notebook finds it
    already run by its own worker (or by the other one, through the folder on disk)."""
    return [pytest.param(path, id=path.stem, marks=lab_group(index)) for index, path in enumerate(paths)]


@dataclass(frozen=True)
class Executed:
    notebook: nbformat.NotebookNode
    seconds: float
    """Not asserted (a loaded machine is slow, not wrong): the benchmark prints each notebook's time."""
    browser_run: BrowserRun | None
    """What JupyterLab showed, where a browser ran it (always in CI); None for a headless run."""


def executed(path: Path) -> Executed:
    """The notebook run top to bottom in a fresh kernel, once per test run: in JupyterLab in Chromium where
    a browser is available, else headless with nbclient. A notebook that failed fails every test that asks."""
    folder = Path(os.environ[FOLDER_VARIABLE])
    saved, record = folder / path.name, folder / f"{path.stem}.json"
    with open(folder / f"{path.stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not record.exists():
            _execute(path, saved, record)
    found = json.loads(record.read_text())
    if found["failure"]:
        pytest.fail(found["failure"], pytrace=False)
    run = found["browser_run"]
    browser_run = None if run is None else BrowserRun(**{
        **run, "saved": Path(run["saved"]), "screenshot": Path(run["screenshot"]), "stray": tuple(run["stray"]),
    })
    return Executed(nbformat.read(saved, as_version=4), found["seconds"], browser_run)


def run_headless(notebook: nbformat.NotebookNode, timeout: float = 300) -> None:
    """Execute in place with nbclient; a failing cell is named (number, first line, error), not dumped."""
    config = Config({"KernelManager": {"transport_encryption": TRANSPORT_ENCRYPTION}})
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", config=config,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
    except CellExecutionError:
        pytest.fail(f"The notebook stopped at {first_error(notebook)}", pytrace=False)


def _execute(path: Path, saved: Path, record: Path) -> None:
    failure, browser_run = None, None
    if browser.unavailable_reason() is None:
        browser_run = lab_session().run_notebook(path.name)
        shutil.copy(browser_run.saved, saved)
        browser_run = dataclasses.replace(browser_run, saved=saved)
        seconds = browser_run.seconds
        if browser_run.failure:
            failure = f"In JupyterLab, {path.name} stopped at {browser_run.failure}"
    else:
        notebook = nbformat.read(path, as_version=4)
        start = time.monotonic()
        try:
            run_headless(notebook)
        except pytest.fail.Exception as failed:
            failure = str(failed)
        seconds = time.monotonic() - start
        nbformat.write(notebook, saved)
    run = None if browser_run is None else {
        **dataclasses.asdict(browser_run), "saved": str(browser_run.saved), "screenshot": str(browser_run.screenshot),
    }
    record.write_text(json.dumps({"seconds": seconds, "failure": failure, "browser_run": run}))
