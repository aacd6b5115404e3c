"""A real browser: JupyterLab runs every notebook, and a dashboard tab closes through jupyter-server-proxy."""

import time
from pathlib import Path

import pytest

from helpers.apps.dashboard import app, metrics, metrics_leaky
from helpers.browser import open_and_close_tabs
from helpers.probe import Probe
from helpers.server import serve
from helpers.waiting import wait_until
from tests.conftest import lab_session, require_browser
from tests.jupyterlab_session import ARTIFACTS, BASE_URL
from tests.notebook_kernel import notebook_paths
from tests.test_notebooks import executed

WITH_LIVE_PLOTS = {"01_predict", "02_reproduce", "03_real_leaks", "04_the_fix", "06_at_scale", "07_browser"}


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_jupyterlab_in_chromium_runs_the_notebook_with_no_error_and_its_live_plots_rendered(path: Path):
    require_browser()
    notebook, _, _ = executed(path)
    run = lab_session().last_runs[path.name]
    assert run.error_cells == 0
    assert run.stray == ()  # what a learner sees under the cells, tracebacks from a server's log included
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    if path.stem in WITH_LIVE_PLOTS:
        assert run.images >= 1
    assert run.screenshot.exists()


def _dashboard_through_proxy(ws_path: str, watched) -> tuple[float | None, int]:
    server = serve(app)
    probe = Probe(server, watched)
    url = lab_session().authenticated(f"proxy/{server.port}/dashboard?ws={ws_path}")
    assert url.startswith(f"http://127.0.0.1:{lab_session().port}{BASE_URL}proxy/")
    report = open_and_close_tabs(url, tabs=1, updates=3, screenshot=str(ARTIFACTS / f"dashboard-{ws_path.replace('/', '-')}.png"))
    assert report.updates_seen[0] >= 3
    back_to_baseline = wait_until(lambda: probe.alive()[watched.__name__] == 0, timeout=2.0)
    return back_to_baseline, probe.alive()[watched.__name__]


def test_a_dashboard_tab_through_the_proxy_renders_updates_and_the_fixed_handler_ends_when_it_closes():
    require_browser()
    back_to_baseline, alive = _dashboard_through_proxy("ws/metrics", metrics)
    assert back_to_baseline is not None and back_to_baseline < 2.0
    assert alive == 0


def test_a_closed_tab_leaves_the_leaky_handler_running():
    require_browser()
    back_to_baseline, alive = _dashboard_through_proxy("ws/metrics-leaky", metrics_leaky)
    assert back_to_baseline is None
    assert alive == 1


def test_the_browser_tests_ran_here():
    """In CI a missing Chromium fails the suite instead of skipping the browser tests."""
    require_browser()
    started = time.monotonic()
    assert lab_session().url.startswith("http://127.0.0.1:")
    assert time.monotonic() - started < 60
