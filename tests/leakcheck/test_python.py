"""``--python PATH``: the server side runs in another interpreter, which needs only the server package.

Proved on the time machine's two historical stacks and on a current stack of other versions than
the lab's (tests/support/zoo_envs.py; each is installed from the package index once, then cached).
"""

import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import timemachine
from tests.support import zoo_envs
from ws_leakcheck import check

ROOT = Path(__file__).resolve().parents[2]
OLD_UVICORN = "uvicorn 0.52.0 (before the fix for lost connections)"
LATE_2023 = "late 2023 (uvicorn 0.24.0, starlette 0.27.0)"


def python_of(name: str) -> str:
    try:
        return str(zoo_envs.current_other() if name == "current" else zoo_envs.historical(name))
    except timemachine.TimeMachineUnavailable as error:
        pytest.skip(f"the environment could not be installed: {error}")


def run_cli(python: str, *args: str) -> tuple[int, dict[str, Any]]:
    code, report = zoo_envs.leakcheck_json(python, *args, timeout=180)
    return code, report["servers"]["uvicorn"]["endpoints"][0]


def test_on_uvicorn_0_52_0_the_articles_loop_is_a_zombie_after_fin_and_rst():
    code, report = run_cli(python_of(OLD_UVICORN), "helpers.apps.seed:app", "/ws/metrics")
    assert code == 1 and report["versions"]["uvicorn"] == "0.52.0"
    assert report["ways"]["fin"]["handlers_alive"] == 2 and report["ways"]["rst"]["handlers_alive"] == 2


def test_on_a_late_2023_stack_the_articles_loop_ends_with_backend_exceptions():
    code, report = run_cli(python_of(LATE_2023), "helpers.apps.seed:app", "/ws/metrics")
    assert code == 3 and report["versions"]["starlette"] == "0.27.0"
    assert report["versions"]["uvicorn ws backend"] == "websockets"
    assert "ConnectionClosedError" in report["ways"]["fin"]["unhandled_exceptions"]


@pytest.mark.parametrize("stack", [LATE_2023, "current"])
def test_a_registry_leak_and_its_fix_get_the_same_verdicts_on_other_stacks(stack):
    python = python_of(stack)
    assert run_cli(python, "tests.support.zoo:app", "/dict-registry")[0] == 1
    assert run_cli(python, "tests.support.zoo:app", "/echo")[0] == 0


def test_on_a_current_stack_of_other_versions_every_route_shape_is_found():
    python = python_of("current")
    code, report = run_cli(python, "tests.support.zoo_shapes:starlette_app", "/ticker")
    assert code == 1 and report["kind"] == "class" and report["versions"]["fastapi"] == "0.115.12"
    code, report = run_cli(python, "tests.support.zoo_shapes:app", "/api/chat/safe/lobby")
    assert code == 0, report


def test_check_takes_the_python_from_python_too():
    report = check("tests.support.zoo:app", "/event-waiter", clients=2, ways=("fin",), python=python_of(LATE_2023))
    assert report.verdict == "leak" and report.versions["fastapi"] == "0.104.1"


def test_assert_no_leak_runs_in_a_projects_own_environment_with_the_tools_source_on_its_path():
    """A project's test suite: its own fastapi/uvicorn/websockets, ws-leakcheck's source (and the lab's test
    endpoints) only on PYTHONPATH, nothing installed."""
    python = python_of("current")
    code = (
        "from ws_leakcheck.testing import assert_no_leak\n"
        "print(assert_no_leak('tests.support.zoo:app', '/echo', clients=2).versions['fastapi'])\n"
        "try:\n"
        "    assert_no_leak('tests.support.zoo:app', '/dict-registry', clients=2)\n"
        "except AssertionError as error:\n"
        "    print(str(error).splitlines()[0])\n"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=180, cwd=ROOT,
                          env={"PYTHONPATH": f"{ROOT}:{ROOT / 'ws-leakcheck' / 'src'}", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["0.115.12", "leak: /dict-registry"]
