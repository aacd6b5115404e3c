"""Which Python serves the app: the project's own, found the way a developer would expect.

``--python`` names it (an interpreter, or a virtual environment's folder). Without it: the active
virtual environment (``$VIRTUAL_ENV``), else a ``.venv`` or ``venv`` folder in the current folder,
else the Python the checker runs on. So a checker installed apart (pipx) checks the app with the
project's own FastAPI, Starlette and server, and one installed into the project uses that same
environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ws_leakcheck.errors import UsageError


def _in_venv(folder: Path) -> Path | None:
    for candidate in (folder / "bin" / "python", folder / "Scripts" / "python.exe"):
        if candidate.is_file():
            return candidate
    return None


def _is_this_python(folder: Path) -> bool:
    try:
        return folder.resolve() == Path(sys.prefix).resolve()
    except OSError:
        return False


def project_python(given: str | None, cwd: Path | None = None) -> tuple[str, str]:
    """The interpreter to serve the app in, and why it was chosen (shown in the report)."""
    if given:
        path = Path(given).expanduser()
        if path.is_dir():
            found = _in_venv(path)
            if found is None:
                raise UsageError(f"--python {given!r} is a folder without bin/python: give a virtual environment's "
                                 "folder or an interpreter.")
            return str(found), "--python"
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise UsageError(f"--python {given!r} is not an executable file (nor a virtual environment's folder).")
        return str(path), "--python"
    folder = Path.cwd() if cwd is None else cwd
    active = os.environ.get("VIRTUAL_ENV")
    for venv, why in ((Path(active) if active else None, "the active virtual environment ($VIRTUAL_ENV)"),
                      (folder / ".venv", "the project's .venv"), (folder / "venv", "the project's venv")):
        if venv is None or not venv.is_dir():
            continue
        found = _in_venv(venv)
        if found is not None:
            return (sys.executable, "the checker's own") if _is_this_python(venv) else (str(found), why)
    return sys.executable, "the checker's own"
