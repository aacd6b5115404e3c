"""The CPython interpreters on this machine, and a cached virtual environment per interpreter.

Notebook 09 runs an asyncio probe on every interpreter it finds here, and a server's shutdown on one per minor
version; the test suite runs every notebook on them (``tests/notebooks/test_pythons.py``). An interpreter is looked
for on ``PATH`` (``python3``, ``python3.11`` ...), in ``/usr/bin`` and ``/usr/local/bin``, and in pyenv's versions
folder. pyenv's shims are skipped: a shim runs whichever version the current folder selects, and fails for the
others. Only CPython 3.11 or newer is kept (what the lab needs), one interpreter per version, the first found.

Standard library only, so that it also runs where the lab's packages are not installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from helpers.errors import PythonUnavailable
from helpers.timemachine import INSTALL_TIMEOUT, UNREACHABLE_SIGNS, cache_dir

MINIMUM = (3, 11)
TESTED_MINORS = ((3, 11), (3, 12), (3, 13))
"""The minor versions the lab's CI runs every notebook on (``tests/notebooks/test_pythons.py``): Debian 12's
python3 (3.11), the Python of the lab's own environment, and the newest CPython 3.12 and 3.13 on the CI machine."""
WAIT_CLOSED_WAITS_SINCE = (3, 12)
"""From CPython 3.12 on, asyncio's ``Server.wait_closed()`` waits until every connection is closed (gh-79033);
before, it returned at once once the server was closed. Notebook 09 measures what that does to a deploy."""
NAMES = ("python3", "python3.11", "python3.12", "python3.13", "python3.14", "python3.15")
FOLDERS = (Path("/usr/bin"), Path("/usr/local/bin"))
KERNEL = "this kernel's"
ASK_TIMEOUT = 20.0
"""Seconds an interpreter may take to say what it is (a cold start on a loaded machine takes one or two)."""
_ASK = ("import json, platform, sys; print(json.dumps({'implementation': platform.python_implementation(), "
        "'version': platform.python_version(), 'prefix': sys.prefix, 'base_prefix': sys.base_prefix}))")


@dataclass(frozen=True)
class Interpreter:
    """One Python found on this machine."""

    path: Path
    version: str
    """``platform.python_version()``, e.g. ``"3.12.1"``."""
    where: str
    """How it was found, for a reader: "this kernel's", "Debian's", "pyenv's", "on PATH"."""

    @property
    def minor(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)

    @property
    def label(self) -> str:
        """The version and how it was found, e.g. ``3.12.1 (pyenv's)``: a table's row label."""
        return f"{self.version} ({self.where})"


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def candidates() -> list[tuple[Path, str]]:
    """Executables worth asking, with how each was found; the kernel's own first."""
    found: list[tuple[Path, str]] = [(Path(sys.executable), KERNEL)]
    debian = Path("/etc/debian_version").exists()
    for folder in FOLDERS:
        for name in NAMES:
            path = folder / name
            if path.exists():
                where = "Debian's" if debian and folder == Path("/usr/bin") else str(folder)
                found.append((path, where))
    for name in NAMES:
        located = shutil.which(name)
        if located and "shims" not in Path(located).parts:
            found.append((Path(located), "on PATH"))
    return found + _pyenv_pythons(_pyenv_root() / "versions")


def _pyenv_pythons(versions: Path) -> list[tuple[Path, str]]:
    """pyenv's Pythons under ``versions``. A folder this user may not read (``runuser`` passes root's PYENV_ROOT
    on; /root is 0700) holds none for them: ``is_dir()`` raises PermissionError there on Python 3.11."""
    try:
        homes = sorted(versions.iterdir()) if versions.is_dir() else []
    except OSError:
        return []
    found = []
    for home in homes:
        path = home / "bin" / "python3"
        with contextlib.suppress(OSError):
            if path.exists() and not (home / "pyvenv.cfg").exists():  # pyenv-virtualenv's venvs live here too
                found.append((path, "pyenv's"))
    return found


def describe(path: Path | str, where: str = "given") -> Interpreter | None:
    """What ``path`` is, if it is a CPython the lab can use (3.11 or newer); None otherwise."""
    try:
        done = subprocess.run([str(path), "-I", "-c", _ASK], capture_output=True, text=True, timeout=ASK_TIMEOUT)
        facts = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    interpreter = Interpreter(Path(path), facts["version"], where)
    if facts["implementation"] != "CPython" or interpreter.minor < MINIMUM:
        return None
    return interpreter


def found(paths: Iterable[tuple[Path, str]] | None = None) -> list[Interpreter]:
    """Every usable interpreter here, one per version: this kernel's first, then the others by version."""
    seen: dict[str, Interpreter] = {}
    for path, where in candidates() if paths is None else paths:
        if any(known.path == path for known in seen.values()):
            continue
        interpreter = describe(path, where)
        if interpreter is not None and interpreter.version not in seen:
            seen[interpreter.version] = interpreter
    ordered = list(seen.values())
    return ordered[:1] + sorted(ordered[1:], key=_version_key)


def one_per_minor(interpreters: Sequence[Interpreter]) -> list[Interpreter]:
    """The first of ``interpreters`` (the kernel's, as ``found()`` orders them), then the newest of each other minor
    version: where notebook 09 measures its deploys, whose outcome changes between minor versions."""
    if not interpreters:
        return []
    first, newest = interpreters[0], {}
    for interpreter in sorted(interpreters[1:], key=_version_key):
        if interpreter.minor != first.minor:
            newest[interpreter.minor] = interpreter
    return [first, *(newest[minor] for minor in sorted(newest))]


def _version_key(interpreter: Interpreter) -> tuple[int, ...]:
    return tuple(int(part) for part in interpreter.version.split(".")[:3] if part.isdigit())


def newest_of(minor: tuple[int, int], interpreters: Sequence[Interpreter] | None = None) -> Interpreter | None:
    """The interpreter found here for ``minor`` (e.g. ``(3, 13)``), or None."""
    matching = [i for i in (found() if interpreters is None else interpreters) if i.minor == minor]
    return matching[-1] if matching else None


def environment(interpreter: Interpreter, requirements: Sequence[str], *, purpose: str, key: str = "") -> Path:
    """The Python of a virtual environment of ``interpreter`` holding ``requirements``, installed on first use.

    Cached in the lab's cache folder (``helpers.timemachine.cache_dir``, which ``python3 -m helpers clean``
    empties), keyed on the interpreter, the requirements and ``key`` (e.g. a digest of ``pyproject.toml`` when
    the requirements name the lab itself). One build at a time per environment: a second asker waits, then
    finds it installed.
    """
    digest = hashlib.sha256("\n".join([str(interpreter.path), interpreter.version, key, *requirements]).encode())
    home = cache_dir() / "stacks" / f"python{interpreter.version}-{purpose}-{digest.hexdigest()[:10]}"
    python, stamp = home / "bin" / "python", home / ".installed"
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.with_name(home.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if stamp.exists() and python.exists():
            return python
        shutil.rmtree(home, ignore_errors=True)
        made = subprocess.run([str(interpreter.path), "-m", "venv", str(home)], capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT)
        if made.returncode != 0:
            shutil.rmtree(home, ignore_errors=True)
            raise PythonUnavailable(_venv_failure(interpreter, made.stdout + made.stderr))
        try:
            installed = subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
                capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise PythonUnavailable(f"Installing {purpose} for Python {interpreter.version} took longer than "
                                    f"{INSTALL_TIMEOUT:.0f} s; the package index is too slow from here.") from None
        if installed.returncode != 0:
            raise PythonUnavailable(_pip_failure(interpreter, purpose, installed.stderr))
        stamp.write_text("\n".join(requirements))
    return python


def _venv_failure(interpreter: Interpreter, output: str) -> str:
    if "ensurepip" in output or "venv" in output:
        package = f"python{interpreter.minor[0]}.{interpreter.minor[1]}-venv"
        return (f"Python {interpreter.label} cannot create a virtual environment; on Debian or Ubuntu, install "
                f"it with `sudo apt-get install {package}`.")
    last = (output.strip().splitlines() or ["no output"])[-1]
    return f"Python {interpreter.label} could not create a virtual environment: {last}"


def _pip_failure(interpreter: Interpreter, purpose: str, stderr: str) -> str:
    last = (stderr.strip().splitlines() or ["no output"])[-1].removeprefix("ERROR: ")
    if any(sign in stderr for sign in UNREACHABLE_SIGNS):
        return (f"The package index cannot be reached from here, so {purpose} cannot be installed for Python "
                f"{interpreter.version} (pip said: {last}).")
    return f"Could not install {purpose} for Python {interpreter.version}: {last}"
