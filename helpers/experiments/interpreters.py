"""A deploy measured on each Python found here: whether hypercorn's graceful timeout ends a hang depends on it.

For each CPython found on this machine (``helpers.pythons``), ``measure`` runs, in that interpreter:

* ``wait_closed.py`` (standard library): does asyncio's ``Server.wait_closed()`` return while a connection's
  handler still runs, and does asyncio log an error when that handler is cancelled;
* on one Python per minor version (``pythons.one_per_minor``), three deploys (``helpers.experiments.deploys``), in a
  virtual environment holding the same versions of the servers as this kernel: hypercorn with the leak and the
  clients gone, hypercorn with the pattern and the clients still connected, uvicorn with
  ``--timeout-graceful-shutdown`` and the leak.

Where a Python cannot be measured here (none found, no package index), ``with_recorded`` adds the rows recorded
with the lab, each labelled as recorded, with its date and versions.

    python -m helpers.experiments.interpreters record   # measure every Python found here, rewrite recorded_09.json
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from helpers import pythons, versions
from helpers.errors import LabError
from helpers.experiments.deploys import Case, Shutdown, shutdown_from_json

ROOT = Path(__file__).resolve().parent.parent.parent
PROBE = Path(__file__).with_name("wait_closed.py")
CHECKER_SOURCE = ROOT / "ws-leakcheck" / "src"
"""Where ``ws_leakcheck`` comes from in another Python's environment: the workers' reporter imports its
standard-library await-chain walk, and that environment holds only the servers."""
RECORDED = Path(__file__).with_name("recorded_09.json")
MEASURED = "measured here, now"
WAITS_SINCE = pythons.WAIT_CLOSED_WAITS_SINCE
"""The first minor whose ``wait_closed()`` waits for every connection (``helpers.pythons.WAIT_CLOSED_WAITS_SINCE``)."""
SERVER_PACKAGES = ("fastapi", "starlette", "uvicorn", "hypercorn", "websockets", "wsproto")
COLUMNS = ("hypercorn_leak", "hypercorn_pattern_connected", "uvicorn_timeout")
PROBE_TIMEOUT = 60.0


def cases(grace: int) -> list[Case]:
    """The three deploys of each row, in the order of ``COLUMNS``."""
    return [Case("hypercorn", "/ws/prices", "fin", grace), Case("hypercorn", "/ws/prices-fixed", "connected", grace),
            Case("uvicorn", "/ws/prices", "fin", grace)]


@dataclass(frozen=True)
class PythonRow:
    """One Python: what asyncio does there, and the three deploys; or why it was not measured."""

    version: str
    """The Python's version, e.g. ``3.12.1``."""
    where: str
    """How it was found: "this kernel's", "Debian's", "pyenv's", "on PATH"."""
    source: str
    """``MEASURED``, or the label of the recording the row comes from."""
    wait_closed_returned: bool | None = None
    """Whether asyncio's ``Server.wait_closed()`` returned with a connection still open; None: not measured."""
    cancel_logged_an_error: bool | None = None
    """Whether cancelling the server's handler logged an error there; None: not measured."""
    hypercorn_leak: Shutdown | None = None
    hypercorn_pattern_connected: Shutdown | None = None
    uvicorn_timeout: Shutdown | None = None
    problem: str = ""
    """Why this Python was not measured (one sentence); empty when it was."""

    @property
    def minor(self) -> tuple[int, int]:
        """``(3, 12)`` for 3.12.1: what ``WAITS_SINCE`` and ``TESTED_MINORS`` are compared with."""
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)

    @property
    def measured(self) -> bool:
        """Whether the row was measured here and now (not recorded, and not refused for a ``problem``)."""
        return self.source == MEASURED and not self.problem


def _servers_python(interpreter: pythons.Interpreter) -> Path:
    """This kernel's own Python, or a cached environment of ``interpreter`` with this kernel's server versions."""
    if interpreter.path == Path(sys.executable):
        return interpreter.path
    wanted = []
    for name in SERVER_PACKAGES:
        version = versions.installed(name)
        if version is None:
            raise LabError(f"This kernel has no {name} installed, so its version cannot be installed elsewhere.")
        wanted.append(f"{name}=={version}")
    return pythons.environment(interpreter, wanted, purpose="servers")


def _run_json(command: list[str], timeout: float, what: str) -> Any:
    paths = (str(ROOT), str(CHECKER_SOURCE), os.environ.get("PYTHONPATH"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "PYTHON_COLORS": "0"}
    try:  # a session of its own: the kernel's interrupt button (SIGINT to its process group) does not reach it
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env,
                              start_new_session=True)
    except subprocess.TimeoutExpired:
        raise LabError(f"{what} did not finish within {timeout:.0f} s.") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith(("{", "["))]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1].removeprefix("helpers.errors.LabError: ")
        raise LabError(f"{what} failed: {last.rstrip('.')}.")
    return json.loads(lines[-1])


def _probed(row: PythonRow, interpreter: pythons.Interpreter) -> PythonRow:
    """``row`` with what asyncio's probe (``wait_closed.py``) found on ``interpreter``."""
    probe = _run_json([str(interpreter.path), "-I", str(PROBE)], PROBE_TIMEOUT,
                      f"asyncio's probe on Python {interpreter.version}")
    return replace(row, wait_closed_returned=probe["wait_closed_returned"],
                   cancel_logged_an_error=probe["cancel_logged_an_error"])


def measure(interpreter: pythons.Interpreter, *, grace: int = 1, give_up_after: float = 5.0,
            deploys: bool = True) -> PythonRow:
    """The row of one Python, measured now; a Python that cannot be measured gives a row saying why.
    ``deploys=False``: asyncio's probe only (a second Python of a minor version whose deploys are measured)."""
    row = PythonRow(interpreter.version, interpreter.where, MEASURED)
    if not deploys:
        try:
            return _probed(row, interpreter)
        except LabError as error:
            return replace(row, problem=str(error))

    def run_deploys() -> Any:
        request = {"cases": [asdict(case) for case in cases(grace)], "give_up_after": give_up_after}
        return _run_json([str(_servers_python(interpreter)), "-m", "helpers.experiments.deploys", json.dumps(request)],
                         PROBE_TIMEOUT + 3 * give_up_after, f"The deploys on Python {interpreter.version}")

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # the probe and the deploys side by side
        deployed = pool.submit(run_deploys)
        try:
            probed = _probed(row, interpreter)
            found = deployed.result()
        except LabError as error:
            return replace(row, problem=str(error))
    hypercorn_leak, hypercorn_pattern_connected, uvicorn_timeout = (shutdown_from_json(item) for item in found)
    return replace(probed, hypercorn_leak=hypercorn_leak, hypercorn_pattern_connected=hypercorn_pattern_connected,
                   uvicorn_timeout=uvicorn_timeout)


def across(interpreters: list[pythons.Interpreter] | None = None, *, grace: int = 1,
           give_up_after: float = 5.0) -> list[PythonRow]:
    """One measured row per Python (every one found here by default), measured side by side: asyncio's probe on
    each, the deploys on one per minor version (``pythons.one_per_minor``), since they differ between minors."""
    found = pythons.found() if interpreters is None else interpreters
    deployed = {interpreter.path for interpreter in pythons.one_per_minor(found)}
    with concurrent.futures.ThreadPoolExecutor(max(1, len(found))) as pool:
        return list(pool.map(lambda i: measure(i, grace=grace, give_up_after=give_up_after,
                                               deploys=i.path in deployed), found))


@dataclass(frozen=True)
class Measuring:
    """``across``, running in the background (``start``): the interpreters it measures, and its rows when done."""

    interpreters: list[pythons.Interpreter]
    """The Pythons being measured, one row each, in this order."""
    future: concurrent.futures.Future[list[PythonRow]]

    def result(self) -> list[PythonRow]:
        """The rows, in the order of ``interpreters``; waits for them if the measurement is still running."""
        return self.future.result()


_background: concurrent.futures.ThreadPoolExecutor | None = None
_pending: dict[tuple[tuple[Path, ...], int, float], Measuring] = {}


def start(interpreters: list[pythons.Interpreter], *, grace: int = 1, give_up_after: float = 5.0) -> Measuring:
    """``across(interpreters)``, started in the background, so that a notebook goes on while it runs (it waits
    ``give_up_after`` on every hang). A start while the same measurement still runs (a cell run again) returns it."""
    global _background
    key = (tuple(interpreter.path for interpreter in interpreters), grace, give_up_after)
    running = _pending.get(key)
    if running is not None and not running.future.done():
        return running
    if _background is None:
        _background = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="deploys-on-every-python")
    future = _background.submit(across, interpreters, grace=grace, give_up_after=give_up_after)
    _pending[key] = Measuring(list(interpreters), future)
    return _pending[key]


@dataclass(frozen=True)
class Recording:
    date: str
    versions: dict[str, str]
    settings: dict[str, float]
    rows: list[PythonRow]

    @property
    def source(self) -> str:
        """What each recorded row says in the table's source column."""
        return f"RECORDED on {self.date}"

    @property
    def label(self) -> str:
        shown = ", ".join(f"{name} {version}" for name, version in self.versions.items())
        return f"RECORDED with the lab on {self.date} ({shown}), not measured here"


def _row_from_json(data: dict[str, Any], source: str) -> PythonRow:
    loaded = {key: (shutdown_from_json(data[key]) if data.get(key) else None) for key in COLUMNS}
    return PythonRow(**{**data, **loaded, "source": source})


def recorded(path: Path = RECORDED) -> Recording:
    data = json.loads(path.read_text())
    recording = Recording(data["date"], data["versions"], data["settings"], [])
    return replace(recording, rows=[_row_from_json(row, recording.source) for row in data["rows"]])


def with_recorded(rows: list[PythonRow], path: Path = RECORDED) -> list[PythonRow]:
    """``rows``, then the recorded rows of every minor version (3.12, 3.13, ...) that none of them measured."""
    measured = {row.minor for row in rows if row.measured}
    return rows + [row for row in recorded(path).rows if row.minor not in measured]


def _outcome(result: Shutdown | None) -> str:
    if result is None:
        return "-"
    if result.seconds is None:
        return f"**still running** at {result.gave_up_after:g} s"
    return f"exited after {result.seconds:.1f} s"


def table(rows: list[PythonRow]) -> str:
    """The rows as a Markdown table (``IPython.display.Markdown`` renders it in a notebook)."""
    header = ("| Python | asyncio: `wait_closed()` while a handler runs | hypercorn, the leak, clients gone "
              "| hypercorn, the pattern, clients connected | uvicorn `--timeout-graceful-shutdown`, the leak "
              "| source |\n|---|---|---|---|---|---|")
    lines = [header]
    for row in rows:
        if row.problem:
            lines.append(f"| {row.version} ({row.where}) | not measured: {row.problem} | | | | |")
            continue
        waits = "-" if row.wait_closed_returned is None else (
            "returns" if row.wait_closed_returned else "**waits** for the connection")
        lines.append(f"| {row.version} ({row.where}) | {waits} | {_outcome(row.hypercorn_leak)} "
                     f"| {_outcome(row.hypercorn_pattern_connected)} | {_outcome(row.uvicorn_timeout)} "
                     f"| {row.source} |")
    if any(row.measured and row.hypercorn_leak is None for row in rows):
        lines.append("\n-: not deployed on that Python: the deploys run on one Python per minor version.")
    if any(row.source != MEASURED for row in rows):
        lines.append(f"\n{recorded().label}: rows from a run of this notebook's measurement on the lab's machine.")
    return "\n".join(lines)


def _plain(row: PythonRow) -> dict[str, Any]:
    data = asdict(row)
    data.pop("source")
    if data["where"] == pythons.KERNEL:
        data["where"] = "the lab's .venv"
    return data


def record(path: Path = RECORDED, *, grace: int = 1, give_up_after: float = 5.0) -> Recording:
    """Measure every Python found here and write the rows, with today's date and the servers' versions."""
    rows = [row for row in across(grace=grace, give_up_after=give_up_after) if row.measured]
    shown = {name: versions.installed(name) or "missing" for name in ("hypercorn", "uvicorn", "starlette")}
    path.write_text(json.dumps({"date": datetime.date.today().isoformat(), "versions": shown,
                                "settings": {"grace": grace, "give_up_after": give_up_after},
                                "rows": [_plain(row) for row in rows]}, indent=1) + "\n")
    return recorded(path)


if __name__ == "__main__":
    if sys.argv[1:] != ["record"]:
        print("usage: python -m helpers.experiments.interpreters record", file=sys.stderr)
        sys.exit(2)
    done = record()
    print(f"recorded {len(done.rows)} Pythons ({', '.join(r.version for r in done.rows)}) in {RECORDED}")
