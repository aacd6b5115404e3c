"""The website: built from the notebooks this test session already executed, then read in a real browser.

``python3 -m helpers book`` executes every notebook itself (``nb_execution_mode = "force"``); here the site is
built from the executed notebooks of tests/notebooks/test_notebooks.py (``--executed``, mode ``off``), so that CI runs
each notebook once.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import functools
import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from helpers import book
from helpers.__main__ import ROOT
from helpers.browser import CHROMIUM_ARGS, chromium_path
from tests.support.browser_session import require_browser
from tests.support.executed import executed, lab_group
from tests.support.jupyterlab_session import WITH_LIVE_PLOTS
from tests.support.notebook_kernel import NOTEBOOKS, notebook_paths

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ORDER = book.notebook_order()
# The first test to use the site builds it, and, when this file runs alone, executes every notebook first.
# One test worker runs them all, so the site is built once.
# In the second JupyterLab group, after its notebooks (a group runs in the order collected): the site waits for every
# executed notebook, and in a group of its own it kept a test worker waiting for as long as the notebooks ran.
pytestmark = [pytest.mark.timeout(900), lab_group(1)]


def image_outputs(notebook: nbformat.NotebookNode) -> list[bytes]:
    return [
        base64.b64decode(output["data"]["image/png"])
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.outputs if "image/png" in output.get("data", {})
    ]


@pytest.fixture(scope="module")
def executed_notebooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("executed")
    for name in ORDER:
        nbformat.write(executed(NOTEBOOKS / f"{name}.ipynb").notebook, folder / f"{name}.ipynb")
    return folder


@pytest.fixture(scope="module")
def site(executed_notebooks: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("book") / "site"
    started = time.monotonic()
    build = subprocess.run([sys.executable, "-m", "helpers.book", "--executed", str(executed_notebooks),
                            "--out", str(out)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"site built from executed notebooks in {time.monotonic() - started:.1f} s, {size / 1e6:.1f} MB")
    return out


@pytest.mark.fast
def test_the_site_order_is_the_readme_table_and_it_lists_every_notebook():
    assert sorted(ORDER) == [p.stem for p in notebook_paths()]
    assert ORDER[:2] == ["00_start_here", "01_predict"]


@pytest.mark.fast
def test_a_readme_without_its_notebooks_table_is_refused_in_one_sentence():
    from helpers.errors import LabError

    with pytest.raises(LabError, match="no '## The notebooks' section"):
        book.notebook_order("# A lab\n\nNo table here.\n")


def test_the_site_has_the_landing_page_every_notebook_the_guide_and_a_search_index(site: Path):
    assert "WebSocket connection leaks in FastAPI" in (site / "index.html").read_text()
    assert all((site / "notebooks" / f"{name}.html").exists() for name in ORDER)
    assert (site / "docs" / "instructor_guide.html").exists()
    assert "uvicorn" in (site / "searchindex.js").read_text()


@pytest.mark.parametrize("name", ORDER)
def test_the_live_plots_are_kept_as_one_png_each_in_the_executed_notebook(name: str, executed_notebooks: Path):
    """A live plot updates one display in place: the executed notebook keeps its last frame, one PNG."""
    images = image_outputs(nbformat.read(executed_notebooks / f"{name}.ipynb", as_version=4))
    assert all(image.startswith(PNG_SIGNATURE) for image in images)
    if name in WITH_LIVE_PLOTS:
        assert images


@dataclass(frozen=True)
class PageSeen:
    status: int
    title: str
    images: list[tuple[bool, int]]
    """(complete, naturalWidth) of each image in the cells' outputs."""
    launch: str | None
    previous: str | None
    """Where the "previous" link points."""
    next: str | None
    """The URL the browser reached by clicking the "next" link."""
    footer: str


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _visit(base: str) -> tuple[dict[str, PageSeen], int]:
    """From the landing page, follow the "next" links through every notebook's page, then search.
    Playwright's sync API runs on a thread of its own (see helpers.browser)."""
    from playwright.sync_api import sync_playwright

    seen: dict[str, PageSeen] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base) else route.abort())
            page.goto(f"{base}index.html")
            reached: list[str] = []
            while page.locator("a.right-next").count() and len(reached) <= len(ORDER):
                with page.expect_navigation() as navigation:
                    page.locator("a.right-next").first.click()
                page.wait_for_load_state("load")
                if reached and reached[-1] in seen:
                    seen[reached[-1]] = dataclasses.replace(seen[reached[-1]], next=page.url)
                name = page.url.rsplit("/", 1)[-1].removesuffix(".html")
                reached.append(name)
                if "/notebooks/" not in page.url:
                    continue
                status = navigation.value.status if navigation.value else 0
                page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=15_000)
                launch = page.locator("a[href*='/v2/gh/']")
                previous = page.locator("a.left-prev")
                seen[name] = PageSeen(
                    status=status,
                    title=page.title(),
                    images=[tuple(i) for i in page.eval_on_selector_all(
                        "div.cell_output img", "els => els.map(e => [e.complete, e.naturalWidth])")],
                    launch=launch.first.get_attribute("href") if launch.count() else None,
                    previous=previous.first.evaluate("a => a.href") if previous.count() else None,
                    next=None,
                    footer="\n".join(page.locator("footer").all_inner_texts()),
                )
            page.goto(f"{base}search.html?q=uvicorn")
            page.wait_for_selector("ul.search li", timeout=15_000)
            return seen, page.locator("ul.search li").count()
        finally:
            browser.close()


@pytest.fixture(scope="module")
def visited(served: str) -> tuple[dict[str, PageSeen], int]:
    require_browser()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(_visit, served).result(300)


@pytest.mark.parametrize("name", ORDER)
def test_the_page_loads_and_shows_every_plot_of_the_executed_notebook_decoded(
    name: str, visited, executed_notebooks: Path
):
    assert name in visited[0], f"following the next links from the landing page never reached {name}"
    page = visited[0][name]
    assert page.status == 200 and page.title
    if name in WITH_LIVE_PLOTS:
        assert page.images, f"{name}: no image in the page's outputs"
    assert len(page.images) == len(image_outputs(nbformat.read(executed_notebooks / f"{name}.ipynb", as_version=4)))
    assert all(complete and width > 0 for complete, width in page.images), page.images


@pytest.mark.parametrize("name", ORDER)
def test_previous_and_next_lead_to_the_neighbours_in_the_readme_order(name: str, visited, served: str):
    page = visited[0][name]
    index = ORDER.index(name)
    expected_previous = f"{served}notebooks/{ORDER[index - 1]}.html" if index else f"{served}index.html"
    expected_next = (f"{served}notebooks/{ORDER[index + 1]}.html" if index + 1 < len(ORDER)
                     else f"{served}docs/instructor_guide.html")
    assert page.previous == expected_previous
    assert page.next == expected_next


@pytest.mark.parametrize("name", ORDER)
def test_the_launch_button_is_the_binder_link_of_helpers_binder_for_that_notebook(name: str, visited):
    assert visited[0][name].launch == book.binder().launch_url(name)


def test_the_launch_link_of_the_first_notebook_is_exactly_what_helpers_binder_prints():
    from helpers.__main__ import binder_link

    assert book.binder().launch_url("00_start_here") in binder_link()


@pytest.mark.parametrize("name", ORDER)
def test_every_page_states_both_licenses(name: str, visited):
    footer = visited[0][name].footer
    assert "MIT" in footer and "CC BY 4.0" in footer


def test_the_search_page_finds_the_lessons(visited):
    assert visited[1] >= 1


@pytest.mark.fast
def test_the_pages_workflow_builds_with_the_readme_command_and_publishes_the_built_site():
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    assert any("python3 -m helpers book" in step.get("run", "") for step in steps)
    assert any(step.get("with", {}).get("path") == "_build/site" for step in steps)
    assert "python3 -m helpers book" in (ROOT / "README.md").read_text()
