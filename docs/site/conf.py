"""Sphinx configuration of the lab's website; build it with ``python3 -m helpers book`` (see helpers/book.py).

The source tree is staged by ``helpers.book.stage``: the README as ``index.md``, the notebooks, the
instructor guide. The table of contents is not written by hand: it is the README's table of notebooks.
"""

from __future__ import annotations

from helpers import book

project = "WebSocket connection leaks in FastAPI: a hands-on lab"
author = "The ws-leak-lab authors"
copyright = f"2026, {author}. Code: MIT license (LICENSE); lessons' text and figures: CC BY 4.0 (LICENSE-CONTENT)"
root_doc = "index"
extensions = ["myst_nb"]
include_patterns = ["index.md", "docs/instructor_guide.md", "docs/ws-leakcheck.md", "notebooks/*.ipynb"]

# Executed afresh by default; python3 -m helpers book --executed DIR (and the tests) pass "off".
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
myst_heading_anchors = 3

_binder = book.binder()
html_theme = "sphinx_book_theme"
html_title = "WebSocket leaks in FastAPI"
html_theme_options = {
    "repository_url": f"https://github.com/{_binder.owner}/{_binder.repo}",
    "repository_branch": _binder.ref,
    "path_to_docs": "",
    "use_repository_button": False,
    "use_download_button": True,
    "launch_buttons": {"binderhub_url": _binder.hub, "notebook_interface": _binder.interface},
}
html_last_updated_fmt = None


def _table_of_contents(app, docname: str, source: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Give the landing page a hidden toctree: the notebooks in the README's order, the guide, the tool's page."""
    if docname == root_doc:
        entries = [f"notebooks/{name}" for name in book.notebook_order(source[0])]
        entries += ["docs/instructor_guide", "docs/ws-leakcheck"]
        source[0] += "\n\n```{toctree}\n:hidden:\n:maxdepth: 1\n\n" + "\n".join(entries) + "\n```\n"


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("source-read", _table_of_contents)
