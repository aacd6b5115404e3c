"""Set up and run the lab with nothing but Python 3.11+ and pip.

    python3 -m helpers lab     # create .venv with the pinned versions, open JupyterLab
    python3 -m helpers test    # same environment, run the whole test suite
    python3 -m helpers binder  # print the Binder link for this clone's origin remote
    python3 -m helpers book    # same environment, build the website of executed notebooks (_build/site/)
    python3 -m helpers canary  # run the lab's claims on the newest releases, in a throwaway environment

Standard library only: this runs before any dependency is installed. The virtual
environment is reused; it is reinstalled when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINDER_PATH = "urlpath=lab/tree/notebooks/00_start_here.ipynb"
VENV = Path(os.environ.get("LAB_VENV", ROOT / ".venv"))


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _ensure_environment() -> Path:
    if sys.version_info < (3, 11):
        sys.exit(f"The lab needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    stamp = VENV / ".lab-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and _python().exists():
        return _python()
    if not _python().exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing the lab's pinned packages (a minute or two the first time) ...", flush=True)
    subprocess.run([_python(), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([_python(), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[test]"], check=True)
    stamp.write_text(wanted)
    return _python()


def binder_link() -> str:
    origin = subprocess.run(["git", "remote", "get-url", "origin"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    match = re.search(r"github\.com[:/]([^/]+)/(.+?)(?:\.git)?$", origin)
    if not match:
        return f"No GitHub 'origin' remote found ({origin or 'none'}); the link is https://mybinder.org/v2/gh/OWNER/REPO/HEAD?{BINDER_PATH}"
    return f"https://mybinder.org/v2/gh/{match.group(1)}/{match.group(2)}/HEAD?{BINDER_PATH}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["binder"]:
        print(binder_link())
        return 0
    if argv[:1] == ["canary"]:
        from helpers.canary import main as canary  # standard library only, like this module

        return canary(argv[1:])
    if not argv or argv[0] not in ("lab", "test", "book"):
        print(__doc__)
        return 2
    python = _ensure_environment()
    if argv[0] == "lab":
        command = [python, "-m", "jupyter", "lab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={ROOT}",
                   "notebooks/00_start_here.ipynb", *argv[1:]]
    elif argv[0] == "book":
        command = [python, "-m", "helpers.book", *argv[1:]]
    else:
        command = [python, "-m", "pytest", *argv[1:]]
    return subprocess.run(command, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
