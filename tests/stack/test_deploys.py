"""Deploys, measured on real server processes: what a SIGINT does to feed-waiting and fixed handlers.

Each test compares a time with the experiment's own parameters (a graceful timeout), never
with a budget of its own; a hang is shown by presence (the process and uvicorn's last log line).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from helpers.apps import production
from helpers.experiments import deploys
from helpers.experiments.deploys import Case, measure_shutdown
from helpers.pythons import WAIT_CLOSED_WAITS_SINCE
from tests.support.notebook_kernel import NOTEBOOKS, code_cells

WAITING = "Waiting for background tasks to complete."


def test_a_feed_waiting_handler_keeps_uvicorn_running_after_sigint():
    result = measure_shutdown("uvicorn", "/ws/prices", departure="fin", give_up_after=3.0)
    assert result.handlers_at_signal == 3  # the clients left; their handlers did not
    assert result.seconds is None
    assert WAITING in result.last_log_line


def test_with_the_pattern_uvicorn_exits_and_tells_connected_clients_1012():
    result = measure_shutdown("uvicorn", "/ws/prices-fixed", departure="connected", give_up_after=30.0)
    assert result.handlers_at_signal == 3
    assert result.seconds is not None
    assert result.closes == ("1012",) * 3  # uvicorn's own "service restart", sent to every client


def test_uvicorns_graceful_timeout_ends_the_hang_after_that_timeout():
    result = measure_shutdown("uvicorn", "/ws/prices", departure="fin", graceful_timeout=1, give_up_after=30.0)
    assert result.seconds is not None and result.seconds >= 1.0
    assert "Finished server process" in result.last_log_line


def test_a_lifespan_shutdown_comes_too_late_to_close_the_registry_on_uvicorn():
    result = measure_shutdown("uvicorn", "/ws/prices-registered", departure="connected", give_up_after=3.0)
    assert result.seconds is None  # lifespan shutdown runs after the handlers end, and they never do
    assert result.closes == ("1012",) * 3  # uvicorn's close, without the app's reason "server restarting"


@pytest.mark.skipif(sys.version_info >= WAIT_CLOSED_WAITS_SINCE, reason="hypercorn 0.18.0 never reaches its "
                    "graceful timeout on Python 3.12+ (notebook 09, helpers.experiments.interpreters)")
def test_hypercorn_cancels_feed_waiting_handlers_at_its_graceful_timeout_before_python_3_12():
    result = measure_shutdown("hypercorn", "/ws/prices-registered", departure="connected", give_up_after=30.0)
    assert result.seconds is not None and result.seconds >= 3.0  # hypercorn's default graceful timeout
    assert result.closes == ("1011",) * 3  # the cancelled handler's "internal error", not the app's 1012


def test_measure_cases_returns_the_results_in_the_order_of_the_cases():
    cases = [Case("uvicorn", "/ws/prices-fixed"), Case("uvicorn", "/ws/prices", graceful_timeout=1)]
    results = deploys.measure_cases(cases, give_up_after=30.0)
    assert [(r.endpoint, r.graceful_timeout) for r in results] == [("/ws/prices-fixed", None), ("/ws/prices", 1)]
    assert all(r.seconds is not None for r in results)



def test_cases_started_in_the_background_are_measured_once_however_often_they_are_started():
    cases = [Case("uvicorn", "/ws/prices-fixed")]
    started = deploys.start_cases(cases, give_up_after=30.0)
    assert deploys.start_cases(cases, give_up_after=30.0) is started   # a cell run again while it measures
    [result] = started.result()
    assert result.endpoint == "/ws/prices-fixed" and result.seconds is not None

def test_the_command_line_measures_cases_and_prints_them_as_json(capsys):
    request = {"cases": [{"server": "uvicorn", "endpoint": "/ws/prices-fixed"}], "give_up_after": 30}
    assert deploys.main([json.dumps(request)]) == 0
    [printed] = json.loads(capsys.readouterr().out)
    assert deploys.shutdown_from_json(printed).handlers_at_signal == 0


@pytest.mark.fast
def test_the_table_says_nothing_was_logged_after_start_up_rather_than_showing_the_start_up_line():
    result = deploys.Shutdown("hypercorn", "/ws/prices-fixed", "fin", 1, 0, 0.2, 5.0, (),
                              "[2026-12-05 10:09:24 +0000] [15409] [INFO] Running on http://127.0.0.1:1 (CTRL + C to")
    assert "| nothing after start-up |" in deploys.table([result])


def _definition(text: str, name: str) -> str:
    match = re.search(rf"^((?:async def|def|class) {name}\b.*?)(?=^\S|\Z)", text, re.S | re.M)
    assert match, name
    return match.group(1).strip()


@pytest.mark.fast
@pytest.mark.parametrize("name", ["lifespan", "prices", "forward", "prices_fixed", "prices_registered"])
def test_the_endpoints_notebook_09_shows_are_the_ones_its_workers_serve(name: str):
    shown = "\n".join(code_cells(NOTEBOOKS / "09_production_deploys.ipynb"))
    assert _definition(shown, name) == _definition(Path(production.__file__).read_text(), name)
