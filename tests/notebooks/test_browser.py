"""A real browser: JupyterLab runs every notebook, and a dashboard tab closes through jupyter-server-proxy."""

import concurrent.futures
import json
from pathlib import Path

import nbformat
import pytest
import websockets
from nbclient import NotebookClient
from websockets.sync.client import connect

from helpers.apps.dashboard import app, get_metrics, metrics, metrics_leaky
from helpers.browser import CHROMIUM_ARGS, chromium_path, open_and_close_tabs
from helpers.dashboard_page import REFUSED, REFUSED_CODE, dashboard_link, kernel_key
from helpers.probe import Probe
from helpers.servers import serve
from helpers.waiting import wait_until
from tests.support.browser_session import lab_session, require_browser
from tests.support.executed import executed, lab_group, notebook_params
from tests.support.jupyterlab_session import ARTIFACTS, BASE_URL, WITH_LIVE_PLOTS
from tests.support.notebook_kernel import NOTEBOOKS, notebook_paths

@pytest.mark.parametrize("path", notebook_params(notebook_paths()))
def test_jupyterlab_in_chromium_runs_the_notebook_with_no_error_and_its_live_plots_rendered(path: Path):
    require_browser()
    done = executed(path)
    notebook, run = done.notebook, done.browser_run
    assert run is not None
    assert run.error_cells == 0
    assert run.stray == ()  # what a learner sees under the cells, tracebacks from a server's log included
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    if path.stem in WITH_LIVE_PLOTS:
        assert run.images >= 1
    assert run.screenshot.exists()


@lab_group(0)
def test_under_run_all_in_jupyterlab_08s_embedded_dashboard_connects_before_the_next_cell_stops_its_server():
    require_browser()
    notebook = executed(NOTEBOOKS / "08_browser.ipynb").notebook
    frame_cell = next(c for c in notebook.cells if c.cell_type == "code" and "display(IFrame(" in c.source)
    printed = "".join(o.get("text", "") for o in frame_cell.outputs if o.output_type == "stream")
    assert "the page above is connected" in printed, printed


def _dashboard_through_proxy(ws_path: str, watched, wait: float) -> tuple[float | None, int]:
    server = serve(app)
    probe = Probe(server, watched)
    url = lab_session().authenticated(f"proxy/{server.port}/dashboard?ws={ws_path}&key={kernel_key()}")
    assert url.startswith(f"http://127.0.0.1:{lab_session().port}{BASE_URL}proxy/")
    report = open_and_close_tabs(url, tabs=1, updates=3,
                                 screenshot=str(ARTIFACTS / f"dashboard-{ws_path.replace('/', '-')}.png"))
    assert report.updates_seen[0] >= 3
    back_to_baseline = wait_until(lambda: probe.alive()[watched.__name__] == 0, timeout=wait)
    return back_to_baseline, probe.alive()[watched.__name__]


@lab_group(1)   # uses that worker's JupyterLab
def test_a_dashboard_tab_through_the_proxy_renders_updates_and_the_fixed_handler_ends_when_it_closes():
    require_browser()
    back_to_baseline, alive = _dashboard_through_proxy("ws/metrics", metrics, wait=30.0)  # a bound, not a budget
    assert back_to_baseline is not None
    assert alive == 0


@lab_group(1)   # uses that worker's JupyterLab
def test_a_closed_tab_leaves_the_leaky_handler_running():
    require_browser()
    back_to_baseline, alive = _dashboard_through_proxy("ws/metrics-leaky", metrics_leaky, wait=2.0)  # 10 send intervals
    assert back_to_baseline is None
    assert alive == 1


@lab_group(1)   # uses that worker's JupyterLab
def test_the_browser_tests_ran_here():
    """In CI a missing Chromium fails the suite instead of skipping the browser tests."""
    require_browser()
    assert lab_session().url.startswith("http://127.0.0.1:")


def _refusal(url: str) -> tuple[str, int, str]:
    """The one message a refused WebSocket receives, then its close's code and reason."""
    with connect(url, open_timeout=10) as ws:
        said = str(ws.recv(timeout=10))
        try:
            ws.recv(timeout=10)
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None
            return said, closed.rcvd.code, closed.rcvd.reason
    raise AssertionError("the server sent a second message instead of closing")


@pytest.mark.parametrize("query", ["", "?key=", "?key=not-this-kernels-key"], ids=["no key", "empty key", "wrong key"])
def test_a_dashboard_websocket_without_this_kernels_key_is_closed_with_a_reason_and_no_handler_runs(query: str):
    server = serve(app)
    probe = Probe(server, {"get_metrics": get_metrics, "metrics": metrics, "metrics_leaky": metrics_leaky})
    said, code, reason = _refusal(f"ws://127.0.0.1:{server.port}/ws/metrics{query}")
    assert json.loads(said) == {"refused": REFUSED}
    assert (code, reason) == (REFUSED_CODE, REFUSED)
    assert probe.alive() == {"get_metrics": 0, "metrics": 0, "metrics_leaky": 0}


def test_the_dashboard_link_carries_this_kernels_key_and_its_websocket_is_served():
    server = serve(app)
    url = dashboard_link(server, "ws/metrics", direct=True).url
    assert url.endswith(f"&key={kernel_key()}")

    with connect(f"ws://127.0.0.1:{server.port}/ws/metrics?key={kernel_key()}", open_timeout=10) as ws:
        assert '"cpu"' in str(ws.recv(timeout=10))


# Straight to the kernel's port and through jupyter-server-proxy (4.6.0), which relays the status as it is.
@pytest.mark.parametrize("route", ["direct", "proxied"])
@lab_group(1)
def test_a_browser_opening_the_dashboard_without_the_key_gets_403_and_starts_no_handler(route: str):
    require_browser()
    server = serve(app)
    probe = Probe(server, metrics)
    without_key = "dashboard?ws=ws/metrics"
    url = (f"http://127.0.0.1:{server.port}/{without_key}" if route == "direct"
           else lab_session().authenticated(f"proxy/{server.port}/{without_key}"))

    def drive() -> tuple[int, str]:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                page = chromium.new_page()
                response = page.goto(url, timeout=15_000)
                assert response is not None
                return response.status, page.inner_text("body")
            finally:
                chromium.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        status, shown = pool.submit(drive).result(60)
    assert (status, shown.strip()) == (403, REFUSED)
    assert probe.alive()["metrics"] == 0


LEARNER_STEPS = """
# What a learner does before the robot runs: opens tabs on every endpoint and closes them.
from helpers.probe import Probe
for path in ENDPOINTS.values():
    browser.open_and_close_tabs(dashboard_link(server, path, direct=True).url, tabs=2)
import time
time.sleep(1.0)   # several sends: the handlers that end have ended
learner_left = Probe(server, WATCH).alive()
print("the learner's tabs left:", learner_left)
assert learner_left["metrics_leaky"] == 2
"""


@pytest.mark.timeout(600)   # the whole of notebook 08 in a fresh kernel, plus six tabs first
def test_notebook_07s_robot_counts_only_what_it_added_after_the_learner_has_opened_and_closed_tabs():
    """On a real hub, 08's robot failed once the learner had done what the notebook asks: it counted every
    handler alive, the learner's leftovers included. Run the learner's steps first, then the rest of 07."""
    require_browser()
    notebook = nbformat.read(NOTEBOOKS / "08_browser.ipynb", as_version=4)
    robot = next(i for i, c in enumerate(notebook.cells) if c.source.startswith("from helpers.prediction import"))
    notebook.cells.insert(robot, nbformat.v4.new_code_cell("from helpers import browser\n" + LEARNER_STEPS))
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "the learner's tabs left: {'get_metrics': 0, 'metrics': 0, 'metrics_leaky': 2}" in printed
    assert ("handlers added by the robot's 3 tabs per endpoint: "
            "{'get_metrics': 0, 'metrics': 0, 'metrics_leaky': 3}" in printed)
