"""The fast tier (``python3 -m helpers test --fast``, the tests marked ``fast``) holds only tests that start no process
and no server: a fast test that starts one fails, by name, at the line that started it."""

from __future__ import annotations

import pytest

CONFTEST = "from tests.conftest import pytest_runtest_call, pytest_runtest_setup  # noqa: F401 - the fast guard\n"
INI = "[pytest]\nmarkers =\n    fast: pure\n"

STARTS_A_PROCESS = """
import subprocess

import pytest


@pytest.mark.fast
def test_runs_a_command():
    subprocess.run(["true"], check=True)
"""

STARTS_A_SERVER = """
import socket

import pytest


@pytest.mark.fast
def test_listens():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
"""

A_FIXTURE_STARTS_A_PROCESS = """
import subprocess

import pytest


@pytest.fixture(scope="session")
def broker():
    return subprocess.Popen(["sleep", "60"])


@pytest.mark.fast
def test_uses_the_broker(broker):
    pass
"""


THEN_ONE_NOT_MARKED = STARTS_A_PROCESS + """

def test_not_marked():
    assert subprocess.Popen._execute_child.__name__ == "_execute_child"
"""


def _run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    pytester.makepyfile(source)
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:xdist", "-q")


@pytest.mark.fast  # the inner session runs in this process
def test_a_fast_test_that_starts_a_process_fails_and_says_why(pytester: pytest.Pytester):
    result = _run(pytester, STARTS_A_PROCESS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*a test marked fast started a process: fast tests start no process and no server*"])


@pytest.mark.fast  # the inner session runs in this process
def test_a_fast_test_that_starts_a_server_fails_and_says_why(pytester: pytest.Pytester):
    result = _run(pytester, STARTS_A_SERVER)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*a test marked fast bound a socket (a server listens on one)*"])


@pytest.mark.fast  # the inner session runs in this process
def test_a_fixture_of_a_fast_test_that_starts_a_process_fails_the_test_at_set_up(pytester: pytest.Pytester):
    result = _run(pytester, A_FIXTURE_STARTS_A_PROCESS)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_uses_the_broker*"])


def test_a_test_not_marked_fast_runs_without_the_guard_even_after_a_fast_one(pytester: pytest.Pytester):
    _run(pytester, THEN_ONE_NOT_MARKED).assert_outcomes(failed=1, passed=1)
