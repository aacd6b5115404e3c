"""A test that leaves an asyncio task behind fails, by name, instead of printing tracebacks after the summary."""

from __future__ import annotations

import nbformat
import pytest

CONFTEST = "from tests.conftest import *  # noqa: F403 - the suite's own fixtures, the task watch included\n"

LEAVES_AN_ORPHAN = """
import time

from helpers.apps import fixed, leaks
from helpers.clients import connect, leave
from helpers.servers import serve


def test_orphaned_keep_warm():
    # notebook 03's orphaned task: keep_warm() outlives its handler and fails at its next send
    server = serve(leaks.app)
    leave(connect(server.url("/ws/alerts"), 2), "clean")
    time.sleep(2 * leaks.KEEP_WARM_INTERVAL + 0.5)


def test_fixed_alerts():
    server = serve(fixed.app)
    leave(connect(server.url("/ws/alerts"), 2), "clean")
    time.sleep(2 * leaks.KEEP_WARM_INTERVAL + 0.5)
"""

LEAVES_A_PENDING_TASK = """
import asyncio

from helpers.loopthread import LoopThread


def test_forgets_its_loop():
    thread = LoopThread("forgotten")

    async def start():
        asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="sleeper")

    thread.call(start(), timeout=2)
"""


def _run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error", timeout=120)


def test_a_task_left_with_an_unretrieved_exception_fails_the_test_that_left_it(pytester: pytest.Pytester):
    result = _run(pytester, LEAVES_AN_ORPHAN)
    result.assert_outcomes(passed=2, errors=1)
    output = result.stdout.str()
    assert "ERROR at teardown of test_orphaned_keep_warm" in output
    assert "task exception never retrieved: keep_warm()" in output and "WebSocketDisconnect" in output
    assert "Task exception was never retrieved" not in output + result.stderr.str()
    assert result.stdout.lines[-1].startswith("=") and "1 error" in result.stdout.lines[-1]


def test_a_task_still_pending_after_the_test_fails_it_and_is_cancelled(pytester: pytest.Pytester):
    result = _run(pytester, LEAVES_A_PENDING_TASK)
    result.assert_outcomes(passed=1, errors=1)
    assert "task still pending: sleep() (sleeper)" in result.stdout.str()
    assert "Task was destroyed but it is pending" not in result.stdout.str() + result.stderr.str()


def test_a_failing_notebook_cell_is_named_by_number_first_line_and_message():
    from tests.support.executed import run_headless

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# A lesson"),
        nbformat.v4.new_code_cell("left_behind = 3"),
        nbformat.v4.new_code_cell("# count what outlived the clients\n"
                                  "assert left_behind == 0, f'{left_behind} left behind'"),
        nbformat.v4.new_code_cell("never_reached = True"),
    ])
    with pytest.raises(pytest.fail.Exception) as failure:
        run_headless(notebook, timeout=60)
    assert str(failure.value) == (
        "The notebook stopped at code cell 2 ('# count what outlived the clients') raised AssertionError: 3 left behind"
    )
