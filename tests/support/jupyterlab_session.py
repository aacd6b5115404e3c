"""JupyterLab, as a learner runs it, driven by a real browser (Debian's Chromium through Playwright).

One JupyterLab server per test session, started with a JupyterHub-like base URL (``/user/learner/``)
on a copy of the notebooks, with jupyter-server-proxy, on 127.0.0.1 only; one page of it in Chromium, where the
notebooks are opened, run and closed one after another.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat

from helpers.browser import CHROMIUM_ARGS, chromium_path

if TYPE_CHECKING:
    from playwright.sync_api import Page
from tests.support.notebook_kernel import NOTEBOOKS, TRANSPORT_ENCRYPTION, first_error, stray_tracebacks

BASE_URL = "/user/learner/"
START_ATTEMPTS = 3
"""Ports tried for JupyterLab before the session gives up (another worker may take the one found free)."""
WITH_LIVE_PLOTS = {"01_predict", "02_reproduce", "03_real_leaks", "04_the_fix", "07_at_scale", "08_browser"}
"""The notebooks that draw a live plot in JupyterLab (the browser and website tests look for it)."""
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
# Done when the kernel is idle with every prompt numbered, or as soon as a cell shows an error (JupyterLab stops
# Run All there; should a later cell still run, it is not waited for: the kernel is shut down after the run).
# JupyterLab renders an error as stderr text whose exception name is red; a log's traceback has no colour.
ALL_PROMPTS_DONE_OR_AN_ERROR = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent.trim());
  const idle = panel.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]') !== null;
  const failed = panel.querySelector(
    '.jp-CodeCell .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"] .ansi-red-fg') !== null;
  return failed || (idle && prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p)));
}"""
# Tracebacks shown under a cell that are not its error (no red exception name): a log or a thread's report.
SHOWN_STRAY = """() => [
  ...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')
].flatMap((cell, i) => {
  const line = cell.querySelector('.jp-InputArea-editor .cm-line');
  return [...cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .filter(out => !out.querySelector('.ansi-red-fg')
                   && /Traceback \\(most recent call last\\)|Exception in ASGI application/.test(out.textContent))
    .map(out => ({cell: i + 1, firstLine: line ? line.textContent.trim() : '',
                  last: out.textContent.trim().split('\\n').filter(l => l.trim()).pop()}));
})"""
ERROR_CELLS = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')].filter(
  cell => cell.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"] .ansi-red-fg, '
                             + '.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]')
).length"""


@dataclass(frozen=True)
class BrowserRun:
    seconds: float
    images: int
    error_cells: int
    saved: Path
    screenshot: Path
    failure: str | None = None
    """The cell where Run All stopped: its number, first line and error."""
    stray: tuple[str, ...] = ()
    """Tracebacks shown under cells that did not raise them (e.g. a server's log arriving during a later cell)."""


def _kept_log() -> Path:
    """Where the JupyterLab log is kept after the run: one per test worker, each of which runs its own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return ARTIFACTS / (f"jupyterlab-{worker}.log" if worker else "jupyterlab.log")


class JupyterLabSession:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="lab-notebooks-"))
        self.token = secrets.token_hex(16)
        for notebook in NOTEBOOKS.glob("*.ipynb"):
            shutil.copy(notebook, self.root / notebook.name)
        self.log = open(self.root / "jupyterlab.log", "w")  # noqa: SIM115 - open for the session; close() closes it
        ARTIFACTS.mkdir(exist_ok=True)
        self.last_runs: dict[str, BrowserRun] = {}
        self._page: Page | None = None
        try:
            for _ in range(START_ATTEMPTS):
                self._start_server()
                if self._wait_ready():
                    break
            else:
                raise RuntimeError(f"JupyterLab exited {START_ATTEMPTS} times at start: every port it was given was "
                                   f"taken before it could listen; its log is {_kept_log()}")
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self.browser = self._playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        except BaseException:
            self._stop_server()
            raise

    def _start_server(self) -> None:
        """Start JupyterLab on a free port. The port, found by binding port 0, is free only until the probe closes:
        another test worker's JupyterLab could take it first. With ``port_retries=0`` this one then exits, rather than
        serving on the next port while the session polls the other's, which refuses its token (a CI run waited
        180 s so, twice)."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}{BASE_URL}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--ServerApp.base_url={BASE_URL}",
             f"--IdentityProvider.token={self.token}",
             f"--KernelManager.transport_encryption={TRANSPORT_ENCRYPTION}",
             "--ServerApp.password=", f"--ServerApp.root_dir={self.root}", "--ServerApp.disable_check_xsrf=True",
             f"--LabApp.workspaces_dir={self.root / '.workspaces'}",
             f"--LabApp.user_settings_dir={self.root / '.settings'}",
             "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             # window.jupyterapp, as JupyterLab's own browser tests (Galata) use it: one page opens every notebook
             "--LabApp.expose_app_in_browser=True"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def _wait_ready(self, timeout: float = 180) -> bool:
        """Until JupyterLab answers (a loaded, shared 2-core machine has taken more than 60 s): True, or False when it
        exited first (its port was taken)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self._request("GET", "api/status"), timeout=2) as answer:
                    if answer.status == 200:
                        return True
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"JupyterLab did not start within {timeout} s; its log is {_kept_log()}")

    def authenticated(self, path: str) -> str:
        """The address of ``path`` (relative to the base URL) with the session's token, for a browser."""
        return f"{self.url}{path}{'&' if '?' in path else '?'}token={self.token}"

    def _request(self, method: str, path: str) -> urllib.request.Request:
        return urllib.request.Request(self.url + path, method=method, headers={"Authorization": f"token {self.token}"})

    def _api(self, method: str, path: str) -> Any:
        # 60 s: a suite run at load 17 had JupyterLab answer no request for 10 s while a notebook's kernel started
        with urllib.request.urlopen(self._request(method, path), timeout=60) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        for session in self._api("GET", "api/sessions") or []:
            self._api("DELETE", f"api/sessions/{session['id']}")

    def _wait_kernel_connected(self, name: str, timeout: float = 60) -> None:
        """Until JupyterLab's session for ``name`` has an idle kernel with the page connected to it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for session in self._api("GET", "api/sessions") or []:
                kernel = session.get("kernel") or {}
                if (session.get("path") == name and kernel.get("execution_state") == "idle"
                        and kernel.get("connections", 0) >= 1):
                    time.sleep(0.5)  # let the page finish its own start-up requests
                    return
            time.sleep(0.2)
        raise RuntimeError(f"JupyterLab's kernel for {name} did not become ready within {timeout} s")

    def _lab_page(self) -> Page:
        """The page JupyterLab runs in, loaded once per session with a fresh workspace, as a learner keeps one tab
        open and opens notebook after notebook (here, notebook 00 run a second time cost Chromium's renderer 2.9 CPU-s
        in the same page, 5.9 on a new one)."""
        if self._page is None:
            page = self.browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                page.goto(self.authenticated("lab?reset"), timeout=60_000)
                page.wait_for_function("() => window.jupyterapp !== undefined", timeout=60_000)
                page.evaluate("async () => { await window.jupyterapp.started; await window.jupyterapp.restored; }")
            except BaseException:
                page.close()
                raise
            self._page = page
        return self._page

    def _drop_page(self) -> None:
        if self._page is not None:
            page, self._page = self._page, None
            page.close()

    def run_notebook(self, name: str, timeout: float = 300) -> BrowserRun:
        """Open the notebook in JupyterLab, Run All Cells, wait until every cell ran or one shows an error, save,
        close it."""
        page = self._lab_page()
        finished = False
        try:
            page.evaluate("async path => { await window.jupyterapp.commands.execute('docmanager:open', {path}); }",
                          name)
            page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=60_000)
            self._wait_kernel_connected(name)
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
            started = time.monotonic()
            page.wait_for_function(ALL_PROMPTS_DONE_OR_AN_ERROR, timeout=timeout * 1000, polling=250)
            seconds = time.monotonic() - started
            shown_stray = [f"under code cell {e['cell']} ({e['firstLine']!r}): {e['last']}"
                           for e in page.evaluate(SHOWN_STRAY)]
            images = page.eval_on_selector_all(f"{PANEL} .jp-OutputArea-output img", "els => els.length")
            error_cells = page.evaluate(ERROR_CELLS)
            page.keyboard.press("Control+s")
            page.wait_for_function("() => !document.title.startsWith('*')", timeout=10_000)
            time.sleep(0.5)
            news = page.query_selector(".jp-toast-button:text-is('No')")
            if news is not None:
                news.click()
            first_image = page.query_selector(f"{PANEL} .jp-OutputArea-output img")
            if first_image is not None:
                first_image.scroll_into_view_if_needed()
                page.wait_for_timeout(1000)  # cells outside the viewport are painted on demand
            screenshot = ARTIFACTS / f"jupyterlab-{Path(name).stem}.png"
            page.screenshot(path=str(screenshot))
            # every output JupyterLab showed, under the cell it showed it
            saved = nbformat.read(self.root / name, as_version=4)
            self.last_runs[name] = BrowserRun(
                seconds, images, error_cells, self.root / name, screenshot, first_error(saved),
                tuple(dict.fromkeys([*shown_stray, *stray_tracebacks(saved)])),
            )
            finished = self._close_notebooks(page)
            return self.last_runs[name]
        finally:
            if not finished:
                self._drop_page()  # the next notebook starts on a fresh page, not behind a dialog left here
            self.shut_down_kernels()

    @staticmethod
    def _close_notebooks(page: Page) -> bool:
        """Close every notebook in the page; False if that did not happen within 10 s (a late output made the
        notebook unsaved, and JupyterLab asks whether to save it): the page is then dropped, not the run."""
        from playwright.sync_api import Error

        try:
            # not awaited: where JupyterLab asks whether to save, the command waits for an answer
            page.evaluate("() => { window.jupyterapp.commands.execute('application:close-all'); }")
            page.wait_for_function(f"() => document.querySelector('{PANEL}') === null", timeout=10_000)
        except Error:
            return False
        return True

    def close(self) -> None:
        try:
            self._drop_page()
            self.browser.close()
            self._playwright.stop()
        finally:
            self._stop_server()

    def _stop_server(self) -> None:
        """Stop JupyterLab, keep its log in test-artifacts, remove the session's temporary folder."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.close()
        shutil.copy(self.root / "jupyterlab.log", _kept_log())
        shutil.rmtree(self.root, ignore_errors=True)
