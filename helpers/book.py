"""Build the lab's website: every notebook executed, in the README's order, with Sphinx and myst-nb.

    python -m helpers.book                      # execute every notebook afresh, build _build/site/
    python -m helpers.book --executed DIR       # build from notebooks already executed (DIR/*.ipynb)

``python3 -m helpers book`` runs the first form inside the lab's virtual environment. Sphinx reads a
source tree staged beside the output (``_build/site-src/``): the README as the landing page
(``index.md``, in the repository's root, so its links still resolve), the instructor guide, the
licenses and the notebooks, at their paths in the repository, so the Binder paths are the repository's. The
configuration is ``docs/site/conf.py``; the table of contents is the README's table of notebooks, read from it here.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from helpers.__main__ import BINDER_PATH, ROOT, binder_link
from helpers.errors import LabError

NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
CONF_DIR = ROOT / "docs" / "site"
BUILD = ROOT / "_build"
PAGES = {"README.md": "index.md", "docs/instructor_guide.md": "docs/instructor_guide.md",
         "docs/ws-leakcheck.md": "docs/ws-leakcheck.md"}
"""The Markdown pages of the site besides the notebooks: the README becomes the landing page, in place."""
FILES = ["LICENSE", "LICENSE-CONTENT", "CITATION.cff"]
"""Files the README links to, published beside the pages."""


def notebook_order(readme: str | None = None) -> list[str]:
    """The notebooks' names (``00_start_here``, ...) in the order of the README's table of notebooks."""
    text = README.read_text() if readme is None else readme
    section = re.search(r"^## The notebooks\n(.*?)(?=^## )", text, re.S | re.M)
    if section is None:
        raise LabError("The README has no '## The notebooks' section to read the site's order from.")
    names = list(dict.fromkeys(re.findall(r"\]\(notebooks/(\w+)\.ipynb\)", section.group(1))))
    if not names:
        raise LabError("The README's '## The notebooks' section links no notebook.")
    return names


@dataclass(frozen=True)
class Binder:
    """The parts of ``python3 -m helpers binder``'s link, which the theme's launch buttons rebuild."""

    hub: str
    owner: str
    repo: str
    ref: str
    interface: str

    def launch_url(self, notebook: str) -> str:
        """The launch link for ``notebooks/<notebook>.ipynb``: the binder link with that notebook's path."""
        path = BINDER_PATH.replace("notebooks/00_start_here.ipynb", f"notebooks/{notebook}.ipynb")
        return f"{self.hub}/v2/gh/{self.owner}/{self.repo}/{self.ref}?{path}"


def binder() -> Binder:
    """This clone's Binder link (from its ``origin`` remote, else OWNER/REPO), split into its parts."""
    match = re.search(r"(https://[^/\s]+)/v2/gh/([^/\s]+)/([^/\s]+)/([^/?\s]+)\?urlpath=(lab/tree|tree)/",
                      binder_link())
    if match is None:
        raise LabError(f"Cannot read a Binder link from: {binder_link()}")
    hub, owner, repo, ref, prefix = match.groups()
    return Binder(hub, owner, repo, ref, "jupyterlab" if prefix == "lab/tree" else "classic")


def stage(source: Path, executed: Path | None = None) -> Path:
    """Lay out Sphinx's source tree in ``source``: the pages, the files, and the notebooks (from
    ``executed`` when given, else the repository's own, without outputs)."""
    if source.exists():
        shutil.rmtree(source)
    for relative, staged in [*PAGES.items(), *zip(FILES, FILES, strict=True)]:
        target = source / staged
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / relative, target)
    origin = NOTEBOOKS if executed is None else executed
    (source / "notebooks").mkdir()
    for name in notebook_order():
        notebook = origin / f"{name}.ipynb"
        if not notebook.exists():
            raise LabError(f"The README lists {name}, but {notebook} does not exist.")
        shutil.copyfile(notebook, source / "notebooks" / notebook.name)
    return source


def build(out: Path = BUILD / "site", executed: Path | None = None, quiet: bool = True) -> Path:
    """Build the site into ``out`` (the landing page is ``out/index.html``).

    Without ``executed`` every notebook runs afresh in its own kernel (myst-nb, ``force``); with it the
    notebooks in that directory are taken as they are (``off``). Raises LabError when Sphinx fails."""
    from sphinx.cmd.build import build_main

    source = stage(out.parent / f"{out.name}-src", executed)
    mode = "force" if executed is None else "off"
    args = ["-b", "html", "-E", "-c", str(CONF_DIR), "-d", str(out.parent / f"{out.name}-doctrees"),
            "-D", f"nb_execution_mode={mode}", str(source), str(out)]
    if quiet:
        args.insert(0, "-q")
    if build_main(args) != 0:
        raise LabError(f"Sphinx could not build the site (see the messages above); sources in {source}.")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m helpers book", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=BUILD / "site",
                        help="where to write the site (default: _build/site)")
    parser.add_argument("--executed", type=Path, help="a directory of already executed notebooks: do not execute")
    parser.add_argument("--verbose", action="store_true", help="show Sphinx's progress")
    options = parser.parse_args(argv)
    started = time.monotonic()
    try:
        out = build(options.out.resolve(), options.executed and options.executed.resolve(), quiet=not options.verbose)
    except LabError as error:
        print(error, file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"Built {out / 'index.html'} in {time.monotonic() - started:.0f} s ({size / 1e6:.1f} MB).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
