"""Set up and run the lab with nothing but Python 3.11+ and pip.

    python3 -m helpers lab [ARGS]  # create .venv with the pinned versions, open JupyterLab (ARGS go to JupyterLab)
    python3 -m helpers test [ARGS] # same environment, run the whole test suite (ARGS go to pytest)
    python3 -m helpers test --fast # only the pure tests (no server, browser, notebook or nginx), in one process
    python3 -m helpers clean       # remove .venv and the lab's caches, and say how much that freed
    python3 -m helpers binder      # print the Binder link for this clone's origin remote
    python3 -m helpers book [ARGS] # same environment, build the website of executed notebooks (_build/site/)
    python3 -m helpers canary      # run the lab's claims on the newest releases, in a throwaway environment

Standard library only: this runs before any dependency is installed. The virtual
environment is reused; it is reinstalled when what a pyproject.toml says to install changes (its build-system,
project or tool.setuptools table, the lab's or the checker's).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from helpers.errors import SetupError

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "ws-leakcheck"
BINDER_PATH = "urlpath=lab/tree/notebooks/00_start_here.ipynb"
VENV = Path(os.environ.get("LAB_VENV", ROOT / ".venv"))
DEFAULT_INDEX = "https://pypi.org/simple"
# pip's words when it could not reach the index (connection refused, DNS, proxy, timeout, TLS).
UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Name or service not known|"
    r"Temporary failure in name resolution|ConnectTimeoutError|ReadTimeoutError|ProxyError|SSLError"
)


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _venv_package() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}-venv"


def _no_venv_message(what: str) -> str:
    return (
        f"This Python cannot create a virtual environment with pip ({what}); on Debian or Ubuntu, "
        f"install it with `sudo apt-get install {_venv_package()}` (or python3-venv), then run this command again."
    )


def _create_venv() -> None:
    """``python3 -m venv --upgrade-deps``-like creation, with one sentence when Debian's venv/ensurepip is missing."""
    try:
        import venv
    except ImportError:
        raise SetupError(_no_venv_message("the venv module is missing")) from None
    try:
        import ensurepip  # noqa: F401 - venv runs it in the new environment; Debian ships it in python3-venv
    except ImportError:
        raise SetupError(_no_venv_message("the ensurepip module is missing")) from None
    print(f"Creating a virtual environment in {VENV} ...", flush=True)
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    except (subprocess.CalledProcessError, SystemExit, OSError) as error:  # SystemExit: Debian's patched venv
        shutil.rmtree(VENV, ignore_errors=True)  # a half-made environment would be taken for a ready one next time
        if not isinstance(error, OSError):
            raise SetupError(_no_venv_message("ensurepip failed in the new environment")) from None
        raise SetupError(f"Could not create the virtual environment in {VENV}: {error.strerror or error}.") from None


def _packages(count: int) -> str:
    return f"{count} package{'s' if count != 1 else ''}"


PROGRESS_EVERY = 20
"""A line of progress every this many packages pip collects (the first install collects about 130)."""


NO_COMPILE = [] if sys.flags.dont_write_bytecode else ["--no-compile"]
"""pip's ``--no-compile``: Python compiles each module to bytecode when it is first imported, and caches it in the
.venv, instead of pip compiling every module at install (measured once on 3.12.1: 74 against 103 CPU-s, and about
150 MB less right after install). Not where bytecode writing is off (``PYTHONDONTWRITEBYTECODE``, common in
containers): there pip's compile is the only one, and without it every process would compile what it imports."""


def _pip_install(*args: str) -> None:
    """pip install, with a line of progress per step; one sentence when the package index is out of reach."""
    command = [str(_python()), "-m", "pip", "install", "--progress-bar", "off", "--disable-pip-version-check",
               *NO_COMPILE, *args]
    lines: list[str] = []
    collected = 0
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as pip:
        assert pip.stdout is not None
        for line in pip.stdout:
            lines.append(line)
            if line.startswith(("Collecting ", "Obtaining ", "Processing ")):
                collected += 1
                if collected % PROGRESS_EVERY == 0:
                    print(f"  {_packages(collected)} collected ...", flush=True)
            elif line.startswith("Installing collected packages"):
                print(f"  installing {_packages(collected)} ...", flush=True)
            elif line.startswith("Successfully installed"):
                print(f"  installed {_packages(len(line.split()) - 2)}.", flush=True)
    done = subprocess.CompletedProcess(command, pip.returncode, "".join(lines), "")
    if done.returncode == 0:
        return
    output = done.stdout + done.stderr
    index = os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX
    if UNREACHABLE.search(output) or ("from versions: none" in output and not _reachable(index)):
        raise SetupError(
            f"Could not reach the package index ({index}) to install the lab's pinned packages; "
            "check the network connection or proxy (pip honours HTTPS_PROXY and PIP_INDEX_URL), then run this "
            "command again."
        )
    sys.stderr.write(output)
    raise SetupError(f"pip could not install the lab's packages into {VENV} (its output is above).")


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10):
            return True
    except (OSError, ValueError):
        return False


INSTALLED_TABLES = ("build-system", "project", "tool.setuptools")
"""The tables of a pyproject.toml that decide what an install puts in the environment (the tools' settings, pytest's
or ruff's, do not)."""


def install_stamp(root: Path) -> str:
    """What an environment installed from the clone at ``root`` records. Either project's installed tables changing
    reinstalls (the lab's pins, or the checker's own dependencies), and so does another clone: the install is
    editable, so an environment made from one clone (a LAB_VENV shared by two) would import that clone's code."""
    import tomllib  # Python 3.11's: imported only once _ensure_environment has checked the version

    wanted = {}
    for path in (root / "pyproject.toml", root / "ws-leakcheck" / "pyproject.toml"):
        tables = tomllib.loads(path.read_text())
        wanted[str(path.relative_to(root))] = {
            name: functools.reduce(lambda table, key: table.get(key, {}), name.split("."), tables)
            for name in INSTALLED_TABLES
        }
    return hashlib.sha256(str(root).encode() + json.dumps(wanted, sort_keys=True, default=str).encode()).hexdigest()


def _ensure_environment() -> Path:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs under whatever python3 the learner has
        raise SetupError(f"The lab needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    stamp = VENV / ".lab-installed"
    wanted = install_stamp(ROOT)
    if stamp.exists() and stamp.read_text() == wanted and _python().exists():
        return _python()
    if not _python().exists():
        _create_venv()
    print("Installing the lab's pinned packages (a minute or two the first time) ...", flush=True)
    _pip_install("-e", f"{ROOT}[test]")
    # The leak checker is a distribution of its own (ws-leakcheck/), installed as its users install it. After the
    # lab: a lab installed before the split also owned the `ws-leakcheck` script, and its reinstall removes it.
    _pip_install("-e", str(TOOL))
    stamp.write_text(wanted)
    return _python()


def binder_link() -> str:
    origin = subprocess.run(["git", "remote", "get-url", "origin"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    match = re.search(r"github\.com[:/]([^/]+)/(.+?)(?:\.git)?$", origin)
    if not match:
        return f"No GitHub 'origin' remote found ({origin or 'none'}); the link is https://mybinder.org/v2/gh/OWNER/REPO/HEAD?{BINDER_PATH}"
    return f"https://mybinder.org/v2/gh/{match.group(1)}/{match.group(2)}/HEAD?{BINDER_PATH}"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def lab(args: list[str]) -> int:
    python = _ensure_environment()
    # transport_encryption=auto: kernels whose kernelspec supports it (ipykernel's does) get CurveZMQ keys, so their
    # messages are encrypted and ipykernel prints no "running over TCP without encryption" warning.
    command = [str(python), "-m", "jupyter", "lab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={ROOT}",
               "--KernelManager.transport_encryption=auto", "notebooks/00_start_here.ipynb", *args]
    if _is_root() and "--allow-root" not in args:
        print("Running as root (as in a container): passing --allow-root to JupyterLab.", flush=True)
        command.append("--allow-root")
    return _run_in_foreground(command)


def _run_in_foreground(command: list[str]) -> int:
    """Run ``command`` until it exits. Ctrl-C reaches it too (same terminal): JupyterLab asks to confirm, then
    shuts down in its own way, so this waits for it instead of dying with a traceback and killing it. A SIGTERM
    sent to this process (``timeout``, ``docker stop``, systemd) is passed on, and this waits for it to exit."""
    process: subprocess.Popen[bytes] | None = None
    asked_to_stop = False

    def forward(signum: int, frame: object) -> None:
        nonlocal asked_to_stop
        asked_to_stop = True
        if process is not None:
            process.send_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, forward)  # before the child exists: a SIGTERM never finds no handler
    try:
        process = subprocess.Popen(command, cwd=ROOT)
        if asked_to_stop:  # it came while the child was starting
            process.send_signal(signal.SIGTERM)
        while True:
            try:
                code = process.wait()
                return 128 - code if code < 0 else code   # killed by a signal: the shell's 128 + its number
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


FAST_TIER = ["-m", "fast", "-n", "0"]
"""What ``test --fast`` gives pytest: the tests marked ``fast`` (they start no process and no server; the suite's
conftest fails one that does), in one process, where starting test workers would cost more than the tests."""


def pytest_args(args: list[str]) -> list[str]:
    """pytest's arguments for ``test ARGS``: ``--fast`` (anywhere) selects the fast tier, the rest go as given."""
    rest = [arg for arg in args if arg != "--fast"]
    return [*FAST_TIER, *rest] if len(rest) < len(args) else rest


def test(args: list[str]) -> int:
    python = _ensure_environment()
    return subprocess.run([str(python), "-m", "pytest", *pytest_args(args)], cwd=ROOT).returncode


def binder(args: list[str]) -> int:
    print(binder_link())
    return 0


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def clean(args: list[str]) -> int:
    """Remove what the lab made for itself; name what it leaves to other tools."""
    from helpers.timemachine import cache_dir  # standard library only, like this module (a test checks)

    # Only the cache's own subfolder: LAB_CACHE may point at a folder that holds other things too.
    owned = [VENV, cache_dir() / "stacks", cache_dir() / "findings", ROOT / "test-artifacts", ROOT / ".pytest_cache",
             ROOT / ".mypy_cache",
             ROOT / "build", *ROOT.glob("*.egg-info")]
    freed = 0
    for path in owned:
        if not path.exists():
            continue
        size = _size(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        freed += size
        print(f"removed {path} ({_megabytes(size)})")
    if cache_dir().name == "ws-leak-lab" and cache_dir().is_dir() and not any(cache_dir().iterdir()):
        cache_dir().rmdir()   # the default cache folder, now empty
    print(f"freed {_megabytes(freed)} in all" if freed else "nothing to remove: no environment and no cache")
    shared = [Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / name for name in ("pip", "matplotlib")]
    kept = [f"{p} ({_megabytes(_size(p))})" for p in shared if p.exists()]
    if kept:
        print("kept, shared with other Python tools (remove by hand if you like): " + ", ".join(kept))
    return 0


def book(args: list[str]) -> int:
    python = _ensure_environment()
    return subprocess.run([str(python), "-m", "helpers.book", *args], cwd=ROOT).returncode


def canary(args: list[str]) -> int:
    from helpers.canary import main as run_canary  # standard library only, like this module

    return run_canary(args)


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "lab": lab, "test": test, "clean": clean, "binder": binder, "book": book, "canary": canary,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SUBCOMMANDS:
        print(__doc__)
        return 2
    try:
        return SUBCOMMANDS[argv[0]](argv[1:])
    except SetupError as error:
        print(f"lab set-up: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
