"""``--server``: a verdict per server and the worst overall (issue 9's servers, FACTS §6).

They run the agent with ``--python``: the lab's own Python when it holds every server, else an
environment of the lab's pins plus every server (tests/support/zoo_envs.py).
"""

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import timemachine
from tests.support import zoo_envs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def every_server() -> str:
    if all(importlib.util.find_spec(name) for name in ("hypercorn", "granian", "daphne")):
        return sys.executable
    try:
        return str(zoo_envs.every_server())
    except timemachine.TimeMachineUnavailable as error:
        pytest.skip(f"the environment could not be installed: {error}")


def leakcheck(python: str, *args: str) -> tuple[int, dict[str, Any]]:
    return zoo_envs.leakcheck_json(python, *args, timeout=300)


def test_the_articles_loop_is_a_leak_on_hypercorn_granian_and_daphne_and_noisy_on_uvicorn(every_server):
    code, report = leakcheck(every_server, "helpers.apps.seed:app", "/ws/metrics", "--server", "all")
    verdicts = {server: section["verdict"] for server, section in report["servers"].items()}
    assert verdicts == {"uvicorn": "noisy", "hypercorn": "leak", "granian": "leak", "daphne": "leak"}
    assert report["verdict"] == "leak" and code == 1
    # daphne cancels the loop at its application close timeout (10 s): it never ended on its own, and the
    # evidence says that daphne's timeout ended it.
    fin = report["servers"]["daphne"]["endpoints"][0]["ways"]["fin"]
    assert 9.0 <= fin["ended_after_s"] <= 15.0, fin
    assert fin["cancelled_by_server"] == 2 and fin["server_cancels_after"] == 10.0, fin


def test_the_pattern_is_clean_on_every_server(every_server):
    code, report = leakcheck(every_server, "helpers.apps.fixed:app", "/ws/prices", "--server", "all")
    assert code == 0, report
    assert {s: v["verdict"] for s, v in report["servers"].items()} == dict.fromkeys(
        ["uvicorn", "hypercorn", "granian", "daphne"], "clean")


def test_a_server_without_a_ping_timeout_skips_the_silent_way_and_says_why(every_server):
    _, report = leakcheck(every_server, "helpers.apps.fixed:app", "/ws/prices", "--server", "granian")
    endpoint = report["servers"]["granian"]["endpoints"][0]
    assert endpoint["ways"]["silent"]["skipped"] == "granian cannot notice a silent client (no ping timeout)"
    assert any("granian has none" in note for note in endpoint["notes"])


def test_daphne_always_runs_in_a_process_of_its_own_and_runs_no_lifespan(every_server):
    _, report = leakcheck(every_server, "helpers.apps.fixed:app", "/ws/chat", "--server", "daphne", "--ways", "clean")
    endpoint = report["servers"]["daphne"]["endpoints"][0]
    assert endpoint["verdict"] == "clean" and endpoint["versions"]["daphne"] == "4.2.3"
    assert "daphne runs no lifespan (it has no lifespan support)" in endpoint["notes"]


def test_a_server_missing_from_the_environment_is_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "ws_leakcheck", "helpers.apps.seed:app", "/ws/metrics",
                           "--server", "granian",
                           "--python", str(zoo_envs.historical("late 2023 (uvicorn 0.24.0, starlette 0.27.0)"))],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert "The granian server is not installed in this Python" in done.stderr


def test_hypercorn_and_granian_run_in_this_process_from_python():
    from ws_leakcheck import check

    if not importlib.util.find_spec("hypercorn") or not importlib.util.find_spec("granian"):
        pytest.skip("the lab's environment predates hypercorn and granian")
    for server in ("hypercorn", "granian"):
        report = check("helpers.apps.seed:app", "/ws/metrics", clients=2, server=server, ways=("fin",))
        assert (report.server, report.verdict, report.ways["fin"].handlers_alive) == (server, "leak", 2)


def test_a_server_missing_from_the_environment_is_named_before_any_check_runs():
    """Before: the app is not even imported (a module that does not exist is not what the error says)."""
    python = zoo_envs.historical("late 2023 (uvicorn 0.24.0, starlette 0.27.0)")
    done = subprocess.run([sys.executable, "-m", "ws_leakcheck", "no_such_module:app", "/ws", "--server", "all",
                           "--python", str(python)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert "The hypercorn server is not installed in this Python" in done.stderr
