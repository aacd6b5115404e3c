"""Run the seed's endpoint on historical stacks, each in a throwaway virtual environment.

Each stack is installed once from the package index into a cache folder
(``$LAB_CACHE``, else ``$XDG_CACHE_HOME/ws-leak-lab``, else ``~/.cache/ws-leak-lab``) and reused afterwards.
The experiment itself (``stack_probe.py``) runs as a subprocess of that environment's Python, so nothing from
an old stack is ever imported into your kernel.

Where the package index cannot be reached (a classroom with no network), ``environment`` raises
``TimeMachineUnavailable`` with that sentence, and ``recorded()`` returns the results of a real
run made with the lab, with its date and versions, for the notebook to show *as recorded*.

    python -m helpers.timemachine build    # install every stack into the cache (Binder's postBuild)
    python -m helpers.timemachine record   # run every case of notebook 02 and rewrite RECORDED
"""

from __future__ import annotations

import concurrent.futures
import datetime
import fcntl
import hashlib
import json
import os
import platform
import subprocess
import sys
import venv
from dataclasses import asdict, dataclass
from pathlib import Path

from helpers.errors import LabError
from helpers.errors import TimeMachineUnavailable as TimeMachineUnavailable  # notebook 02 catches it here

PROBE_SCRIPT = Path(__file__).with_name("stack_probe.py")
RECORDED = Path(__file__).with_name("timemachine_recorded.json")
INSTALL_TIMEOUT = 600.0
"""Seconds one stack's ``pip install`` may take before the time machine gives up."""
PROBE_TIMEOUT = 60.0
UNREACHABLE_SIGNS = (
    "(from versions: none)", "NewConnectionError", "Failed to establish a new connection", "Network is unreachable",
    "Temporary failure in name resolution", "Name or service not known", "ConnectTimeoutError", "ProxyError",
)
"""What pip prints when it never heard from the index (its own words hide that: "No matching distribution found")."""

STACKS: dict[str, tuple[str, ...]] = {
    "uvicorn 0.52.0 (before the fix for lost connections)": (
        "fastapi==0.165.0", "starlette==1.10.0", "uvicorn==0.52.0", "websockets==17.4", "wsproto==1.3.2",
    ),
    "late 2023 (uvicorn 0.24.0, starlette 0.27.0)": (
        "fastapi==0.104.1", "starlette==0.27.0", "uvicorn==0.24.0", "websockets==12.0", "wsproto==1.2.0",
    ),
}
"""The historical stacks notebook 02 compares, by label: the pins each is installed with, in a cached venv."""


@dataclass(frozen=True)
class StackReport:
    """One way of leaving on one historical stack and backend: whether the handler ended, after how long,
    and what it sent, raised and logged meanwhile."""

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
    python = _home(stack) / "bin" / "python"
    if is_cached(stack) and python.exists():
        return python
    return build_environment(_home(stack), STACKS[stack], name=stack)


def build_environment(home: Path, pins: tuple[str, ...], *, name: str) -> Path:
    """The Python of a virtual environment at ``home`` holding ``pins``, installed unless it already is.

    One build at a time per folder: two kernels, or two test workers, that ask for the same stack at once
    take turns, and the second finds it installed.
    """
    python, stamp = home / "bin" / "python", home / ".installed"
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.with_name(home.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if stamp.exists() and stamp.read_text() == " ".join(pins) and python.exists():
            return python
        venv.EnvBuilder(with_pip=True, clear=True).create(home)
        try:
            installed = subprocess.run(
                [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
                capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise TimeMachineUnavailable(
                f"Installing {name} took longer than {INSTALL_TIMEOUT:.0f} s, so the package index is too slow to "
                "reach from here today."
            ) from None
        if installed.returncode != 0:
            raise TimeMachineUnavailable(install_failure(name, installed.stderr, pins))
        stamp.write_text(" ".join(pins))
    return python


def install_failure(stack: str, pip_stderr: str, pins: tuple[str, ...] | None = None) -> str:
    """One sentence on why pip could not install a stack, in the learner's terms rather than pip's."""
    last = (pip_stderr.strip().splitlines() or ["no output"])[-1].removeprefix("ERROR: ")
    if any(sign in pip_stderr for sign in UNREACHABLE_SIGNS):
        return f"The package index cannot be reached from here, so {stack} cannot be installed (pip said: {last})."
    return f"Could not install {stack} ({' '.join(pins or STACKS[stack])}): {last}"


def run(stack: str, backend: str, way: str, observe: float = 1.0) -> StackReport:
    return run_ways(stack, backend, [way], observe)[0]


def run_ways(stack: str, backend: str, ways: list[str], observe: float = 1.0) -> list[StackReport]:
    """One subprocess on ``stack``'s Python runs each way on a fresh server, one after the other."""
    python = environment(stack) if stack in STACKS else Path(sys.executable)
    limit = len(ways) * (PROBE_TIMEOUT + observe)
    try:
        done = subprocess.run(
            [python, PROBE_SCRIPT, backend, ",".join(ways), str(observe)], capture_output=True, text=True,
            timeout=limit, cwd=PROBE_SCRIPT.parent,
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"The probe on {stack}, {backend}, {ways} did not finish within {limit:.0f} s.") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or len(lines) != len(ways):
        raise LabError(f"The probe failed on {stack}, {backend}, {ways}: "
                       f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return [StackReport(stack=stack, **json.loads(line)) for line in lines]


def run_many(cases: list[tuple[str, str, str]], observe: float = 1.0, workers: int = 4) -> list[StackReport]:
    """Run (stack, backend, way) cases, installing each stack first: one subprocess per stack and backend,
    those subprocesses in parallel. The reports come back in the order of ``cases``."""
    for stack in dict.fromkeys(stack for stack, _, _ in cases):
        if stack in STACKS:
            environment(stack)
    groups: dict[tuple[str, str], list[str]] = {}
    for stack, backend, way in cases:
        groups.setdefault((stack, backend), []).append(way)

    def run_group(group: tuple[str, str]) -> list[StackReport]:
        return run_ways(*group, groups[group], observe)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        done = dict(zip(groups, pool.map(run_group, groups), strict=True))
    reports = {(r.stack, r.backend, r.way): r for found in done.values() for r in found}
    return [reports[case] for case in cases]


@dataclass(frozen=True)
class Recorded:
    """Results of a real run of the time machine, kept with the lab for rooms with no package index."""

    date: str
    """The day of the run (ISO format)."""
    python: str
    """The Python version the stacks ran on."""
    platform: str
    reports: list[StackReport]
    """What each stack did in each case, in ``STACKS``' order."""

    @property
    def versions(self) -> dict[str, dict[str, str]]:
        """The versions each stack actually ran, as the probe read them from its environment."""
        return {r.stack: r.versions for r in self.reports}


def recorded(path: Path = RECORDED) -> Recorded:
    """The results recorded with the lab (``python -m helpers.timemachine record`` wrote them)."""
    data = json.loads(path.read_text())
    return Recorded(data["date"], data["python"], data["platform"], [StackReport(**r) for r in data["reports"]])


def record(cases: list[tuple[str, str, str]], observe: float = 0.6, path: Path = RECORDED) -> Recorded:
    """Run ``cases`` for real and write the results, with today's date and this machine's Python, to ``path``."""
    reports = run_many(cases, observe=observe)
    result = Recorded(datetime.date.today().isoformat(), platform.python_version(), platform.platform(terse=True),
                      reports)
    path.write_text(json.dumps({**asdict(result), "reports": [asdict(r) for r in reports]}, indent=1) + "\n")
    return result


def notebook_cases() -> list[tuple[str, str, str]]:
    """The (stack, backend, way) cases notebook 02 runs, each observed for 0.6 s after the client left."""
    old, older = list(STACKS)
    return ([(old, b, w) for b in ["websockets-sansio", "wsproto"] for w in ["fin", "rst"]]
            + [(older, b, w) for b in ["wsproto", "websockets"] for w in ["clean", "fin", "rst"]])


def main(argv: list[str]) -> int:
    if argv == ["build"]:
        for stack in STACKS:
            print(f"{stack}: {environment(stack)}", flush=True)
        return 0
    if argv == ["record"]:
        done = record(notebook_cases())
        print(f"recorded {len(done.reports)} runs on {done.date} (Python {done.python}) in {RECORDED}")
        return 0
    print("usage: python -m helpers.timemachine build|record")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
