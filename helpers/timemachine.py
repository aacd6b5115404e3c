"""Run the seed's endpoint on historical stacks, each in a throwaway virtual environment.

Each stack is installed once from the package index into a cache folder
(``$LAB_CACHE``, else ``$XDG_CACHE_HOME/ws-leak-lab``, else ``~/.cache/ws-leak-lab``) and reused afterwards. The experiment itself
(``stack_probe.py``) runs as a subprocess of that environment's Python, so nothing from an old
stack is ever imported into your kernel.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

PROBE_SCRIPT = Path(__file__).with_name("stack_probe.py")

STACKS: dict[str, tuple[str, ...]] = {
    "uvicorn 0.52.0 (before the fix for lost connections)": (
        "fastapi==0.165.0", "starlette==1.10.0", "uvicorn==0.52.0", "websockets==17.4", "wsproto==1.3.2",
    ),
    "late 2023 (uvicorn 0.24.0, starlette 0.27.0)": (
        "fastapi==0.104.1", "starlette==0.27.0", "uvicorn==0.24.0", "websockets==12.0", "wsproto==1.2.0",
    ),
}


class TimeMachineUnavailable(RuntimeError):
    """A historical stack could not be installed (typically: the package index is out of reach)."""


@dataclass(frozen=True)
class StackReport:
    stack: str
    versions: dict[str, str]
    backend: str
    way: str
    observed_seconds: float
    handler_ended_after: float | None
    still_running: int
    sends_after_leave: int
    raised_in_handler: str | None
    logged_errors: list[str]
    shutdown_hung: bool


def cache_dir() -> Path:
    """``$LAB_CACHE``, else ``$XDG_CACHE_HOME/ws-leak-lab``, else ``~/.cache/ws-leak-lab``."""
    if os.environ.get("LAB_CACHE"):
        return Path(os.environ["LAB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ws-leak-lab"


def _home(stack: str) -> Path:
    digest = hashlib.sha256(" ".join(STACKS[stack]).encode()).hexdigest()[:12]
    return cache_dir() / "stacks" / digest


def is_cached(stack: str) -> bool:
    return (_home(stack) / ".installed").exists()


def environment(stack: str) -> Path:
    """The Python of the stack's virtual environment, installing it on first use."""
    pins = STACKS[stack]
    home = _home(stack)
    python = home / "bin" / "python"
    stamp = home / ".installed"
    if is_cached(stack) and python.exists():
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
        capture_output=True, text=True, timeout=600,
    )
    if installed.returncode != 0:
        last = (installed.stderr.strip().splitlines() or ["no output"])[-1]
        raise TimeMachineUnavailable(f"Could not install {stack} ({' '.join(pins)}): {last}")
    stamp.write_text(" ".join(pins))
    return python


def run(stack: str, backend: str, way: str, observe: float = 1.0) -> StackReport:
    python = environment(stack) if stack in STACKS else Path(sys.executable)
    done = subprocess.run(
        [python, PROBE_SCRIPT, backend, way, str(observe)], capture_output=True, text=True, timeout=60, cwd=PROBE_SCRIPT.parent
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"The probe failed on {stack}, {backend}, {way}: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return StackReport(stack=stack, **json.loads(lines[-1]))


def run_many(cases: list[tuple[str, str, str]], observe: float = 1.0, workers: int = 4) -> list[StackReport]:
    """Run (stack, backend, way) cases in parallel subprocesses, installing each stack first."""
    for stack in dict.fromkeys(stack for stack, _, _ in cases):
        if stack in STACKS:
            environment(stack)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda case: run(*case, observe=observe), cases))
