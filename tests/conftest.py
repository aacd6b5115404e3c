from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import clients, loopthread
from helpers.servers import stop_current
from tests.support import fast, other_pythons
from tests.support.browser_session import lab_session
from tests.support.executed import FOLDER_VARIABLE


class TaskWatch:
    """Every task started on a loop the lab creates (``LoopThread``), and what those loops reported.

    A test's leftovers are what remains once the lab has released its servers and clients: a task
    still pending, or a task that ended with an exception nobody retrieved (asyncio would print it as
    "Task exception was never retrieved" whenever the task is garbage-collected, often after the
    test run's summary).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._created = 0
        self._reports: list[dict[str, Any]] = []

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.set_task_factory(self._task_factory)
        loop.set_exception_handler(self._exception_handler)

    def _task_factory(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        with self._lock:
            self._tasks.add(task)
            self._created += 1
        return task

    def _exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        with self._lock:
            self._reports.append(context)
        loop.default_exception_handler(context)  # the test's captured log still shows it, as without the watch

    def start(self) -> None:
        """Forget earlier tests' tasks and reports."""
        with self._lock:
            self._tasks = weakref.WeakSet()
            self._created = 0
            self._reports.clear()

    def leftovers(self) -> list[str]:
        """Name, and settle, what outlived the test: pending tasks are cancelled, exceptions retrieved."""
        with self._lock:
            self._reports.clear()  # reports during the test are the test's business (the leak checker counts them)
            created = self._created
        if created:  # a full collection costs ~0.1 s a test: only a test that started tasks can have left one
            gc.collect()  # unreachable tasks report their unretrieved exceptions now, to the handler above
        with self._lock:
            tasks, reports = list(self._tasks), list(self._reports)
        found = [f"the loop reported: {_describe_report(report)}" for report in reports]
        for task in tasks:
            if not task.done():
                found.append(f"task still pending: {_describe_task(task)}")
                loop = task.get_loop()
                if not loop.is_closed():
                    loop.call_soon_threadsafe(task.cancel)
            elif not task.cancelled() and getattr(task, "_log_traceback", False):
                error = task.exception()  # retrieved: asyncio will not print it later
                found.append(f"task exception never retrieved: {_describe_task(task)} raised {error!r}")
        return found


def _describe_task(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return f"{getattr(coro, '__qualname__', repr(coro))}() ({task.get_name()})"


def _describe_report(context: dict[str, Any]) -> str:
    task = context.get("task") or context.get("future")
    where = f" in {_describe_task(task)}" if isinstance(task, asyncio.Task) else ""
    error = context.get("exception")
    return f"{context.get('message', '?')}{where}" + (f": {error!r}" if error is not None else "")


TASK_WATCH = TaskWatch()


EXECUTED_FOLDER = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """The run's main process makes the folder of executed notebooks (tests/support/executed.py); its test workers
    inherit it through the environment."""
    if os.environ.get(FOLDER_VARIABLE) is None:
        folder = tempfile.mkdtemp(prefix="ws-lab-executed-")
        os.environ[FOLDER_VARIABLE] = config.stash[EXECUTED_FOLDER] = folder
        if other_pythons.selected(config):  # the notebooks on the other Pythons, in the background meanwhile
            other_pythons.start(Path(folder) / other_pythons.SUBFOLDER)


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(EXECUTED_FOLDER, None)
    if folder is not None:
        other_pythons.stop(Path(folder) / other_pythons.SUBFOLDER)
        shutil.rmtree(folder, ignore_errors=True)
        del os.environ[FOLDER_VARIABLE]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that read the other Pythons' results (tests/notebooks/test_pythons.py) come last. Each waits for its
    notebook's run in the background: dispatched in the middle of the session, they held four of the five test
    workers waiting for minutes while tests that run something waited their turn. pytest-xdist's ``loadgroup``, with
    its default ``--loadscope-reorder``, hands out the groups first (the largest first), then single tests in this
    order."""
    waiting = [item for item in items
               if item.path.name == "test_pythons.py" and item.get_closest_marker("fast") is None]
    items[:] = [item for item in items if item not in waiting] + waiting


@pytest.fixture(scope="session", autouse=True)
def watch_lab_loops() -> Iterator[TaskWatch]:
    loopthread.NEW_LOOP_HOOKS.append(TASK_WATCH.install)
    yield TASK_WATCH
    loopthread.NEW_LOOP_HOOKS.remove(TASK_WATCH.install)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    """A test marked ``fast`` fails if it, or a fixture it sets up, starts a process or a server
    (tests/support/fast.py)."""
    with fast.guarded(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    with fast.guarded(item):
        return (yield)


@pytest.fixture(autouse=True)
def release_lab_resources(watch_lab_loops: TaskWatch) -> Iterator[None]:
    """Every test starts and ends with no lab server and no lab client, and leaves no task behind."""
    watch_lab_loops.start()
    yield
    clients.close_all()
    stop_current()
    leftovers = watch_lab_loops.leftovers()
    if leftovers:
        pytest.fail("The test left asyncio tasks behind on the lab's loops:\n  " + "\n  ".join(leftovers),
                    pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def close_lab_session() -> Iterator[None]:
    yield
    if lab_session.cache_info().currsize:
        lab_session().close()
