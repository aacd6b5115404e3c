"""The canary: do the lab's claims still hold on the newest releases of what it teaches?

    python3 -m helpers canary              # notebooks and the tests that stand for claims (several minutes)
    python3 -m helpers canary --tests-only # the pytest selection only

It creates a throwaway virtual environment (a temporary folder, removed afterwards), installs the lab
there as ``pip install -e .[test]``, then upgrades the packages whose behaviour the lab teaches
(``UPSTREAM``) to their newest releases. It runs every notebook top to bottom in a fresh kernel (the
notebooks' asserts are the claims) and a pytest selection (``TESTS``), and prints one row per claim:
still holds, changed (with the failing assertion's message), or could not run. It never edits the pins.

A notebook checks the versions its text was measured with (``expect_versions`` here, or
``helpers.versions.check_pins`` for every pin). Outside the canary a difference stops it there, with the
packages that differ. Under the canary (which sets ``CANARY_VARIABLE`` for the notebooks it runs) the
difference is printed on a line that starts with ``CANARY_LINE``, and the lesson runs on to its end, so
that its own asserts test its claims on the newest releases; the table then has a row "runs other
versions" for that notebook, which does not count as a change.

Exit status: 0 nothing changed, 1 a claim changed, 2 something could not run (and nothing changed).

Standard library only, like ``helpers.__main__``: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
import venv
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ["fastapi", "starlette", "uvicorn", "websockets", "wsproto", "hypercorn", "granian", "daphne"]
TESTS = ["tests/servers/test_server.py", "tests/leakcheck/test_lesson_endpoints.py", "tests/servers/test_servers.py",
         "tests/servers/test_lifecycle.py"]
"""The tests that stand for claims (uvicorn's behaviour, the leak checker's verdicts on the zoo of endpoints,
and the other servers' tests where this clone has them), as glob patterns under the repository."""

HOLDS, CHANGED, NOT_RUN = "still holds", "changed", "could not run"
OTHER_VERSIONS = "runs other versions"
"""A notebook ran on other versions than those its text was measured with: reported, not a change of a claim."""
CANARY_VARIABLE = "LAB_CANARY"
"""Set by the canary in the environment of what it runs (``helpers.versions.CANARY`` is the same name)."""
CANARY_LINE = "Canary run: "
"""How a notebook's output line starts when it reports versions that differ, under the canary."""


def expect_versions(running: Mapping[str, str], measured_with: Mapping[str, str]) -> None:
    """Check that the versions running are those the lesson was measured with.

    Outside the canary a difference is an ``AssertionError`` naming each package (the lesson would state
    results of other versions). Under the canary (``CANARY_VARIABLE`` set) it is printed, on a line the
    canary reads back, and the lesson goes on, so that its measurements test its claims on those versions.
    """
    differs = [f"{name} {running.get(name, 'missing')} (measured with {version})"
               for name, version in measured_with.items() if running.get(name) != version]
    if differs and os.environ.get(CANARY_VARIABLE):
        print(f"{CANARY_LINE}versions differ from those this lesson was measured with ({'; '.join(differs)}); "
              "the lesson runs on, and its asserts test its claims on them.")
    elif differs:
        raise AssertionError(f"This lesson was measured with other versions: {'; '.join(differs)}. "
                             "Reinstall the lab's pins (python3 -m helpers lab) to follow it as written.")



NOTEBOOK_RUNNER = r"""
import json, re, sys, nbformat, nbclient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
path = sys.argv[1]
notebook = nbformat.read(path, as_version=4)
client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                 resources={"metadata": {"path": sys.argv[2]}})
def reported_versions():
    return [line.strip() for cell in notebook.cells for output in cell.get("outputs", [])
            for line in output.get("text", "").splitlines() if line.startswith(sys.argv[3])]
try:
    client.execute()
    result = {"status": "passed"}
except (CellTimeoutError, DeadKernelError) as error:
    result = {"status": "error", "message": f"{type(error).__name__}: {error}".splitlines()[0]}
except CellExecutionError as error:
    plain = re.sub(r"\x1b\[[0-9;]*m", "", error.traceback or "")
    lines = re.findall(r"^-+> *\d+ (.*)$", plain, re.M)
    where = f" at `{lines[-1].strip()}`" if lines else ""
    result = {"status": "failed", "message": f"{error.ename}: {error.evalue}".rstrip(": ") + where}
result["versions"] = reported_versions()
print(json.dumps(result))
"""


@dataclass(frozen=True)
class Result:
    """One claim (a test or a notebook) on the versions tested: it holds, it changed, or it could not run."""

    claim: str
    status: str
    detail: str = ""


def _first_line(text: str, limit: int = 160) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def results_from_junit(xml: str) -> list[Result]:
    """One result per test case of a pytest ``--junitxml`` report."""
    results = []
    for case in ElementTree.fromstring(xml).iter("testcase"):
        claim = f"{case.get('file') or case.get('classname', '').replace('.', '/') + '.py'}::{case.get('name')}"
        failure, error, skipped = case.find("failure"), case.find("error"), case.find("skipped")
        if failure is not None:
            results.append(Result(claim, CHANGED, _first_line(failure.get("message") or failure.text or "")))
        elif error is not None:
            results.append(Result(claim, NOT_RUN, _first_line(error.get("message") or error.text or "")))
        elif skipped is not None:
            results.append(Result(claim, NOT_RUN, "skipped: " + _first_line(skipped.get("message") or "")))
        else:
            results.append(Result(claim, HOLDS))
    return results


def result_from_notebook(name: str, outcome: Mapping[str, Any] | None, stderr: str = "") -> Result:
    """A notebook's result from the runner's JSON (None when the runner itself failed)."""
    claim = f"notebooks/{name}.ipynb (its asserts)"
    if outcome is None:
        return Result(claim, NOT_RUN, _first_line(stderr.strip().splitlines()[-1] if stderr.strip() else "no output"))
    if outcome["status"] == "passed":
        return Result(claim, HOLDS)
    return Result(claim, CHANGED if outcome["status"] == "failed" else NOT_RUN, _first_line(outcome.get("message", "")))


def versions_differ(name: str, lines: list[str]) -> Result:
    """The row of a notebook that ran on other versions than its text was measured with (the lines it printed)."""
    details = [line.removeprefix(CANARY_LINE) for line in dict.fromkeys(lines)]
    return Result(f"notebooks/{name}.ipynb (the versions it was measured with)", OTHER_VERSIONS, " / ".join(details))


def exit_status(results: list[Result]) -> int:
    if any(r.status == CHANGED for r in results):
        return 1
    if not results or any(r.status == NOT_RUN for r in results):
        return 2
    return 0


def table(results: list[Result], versions: dict[str, tuple[str, str]]) -> str:
    """The report: the versions tested against the pins, then one row per claim."""
    lines = ["| package | pinned | tested |", "|---|---|---|"]
    lines += [f"| {name} | {pinned} | {tested} |" for name, (pinned, tested) in versions.items()]
    lines += ["", "| claim | verdict | new value / reason |", "|---|---|---|"]
    lines += [f"| {r.claim} | {r.status} | {r.detail.replace('|', '/')} |" for r in results]
    counts = {status: sum(r.status == status for r in results) for status in (HOLDS, CHANGED, NOT_RUN)}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    others = sum(r.status == OTHER_VERSIONS for r in results)
    lines += ["", summary + (f"; {others} notebook(s) ran on other versions than their text names" if others else "")]
    return "\n".join(lines)


def pinned_versions() -> dict[str, str]:
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(_pin(pin) for pin in pins)


def _pin(pin: str) -> tuple[str, str]:
    match = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", pin)
    if match is None:
        raise ValueError(f"pyproject.toml's dependency {pin!r} is not pinned as NAME==VERSION, "
                         "which the canary compares.")
    return match.group(1), match.group(2)


def _installed(python: Path) -> dict[str, str]:
    listing = subprocess.run([python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True)
    return {entry["name"].lower(): entry["version"] for entry in json.loads(listing.stdout or "[]")}


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-m", "pip", "install", "--quiet", *args], capture_output=True, text=True)


def install(env: Path) -> tuple[Path, Result | None, list[Result]]:
    """The throwaway environment: the lab as pinned, then the newest releases of ``UPSTREAM``.
    Returns its interpreter, why the lab could not be installed (or None), and the packages that could not."""
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _pip(python, "--upgrade", "pip")
    lab = _pip(python, "-e", f"{ROOT}[test]")
    if lab.returncode == 0:
        lab = _pip(python, "--no-deps", "-e", str(ROOT / "ws-leakcheck"))  # the leak checker the tests import
    if lab.returncode != 0:
        return python, Result("install the lab (pip install -e .[test])", NOT_RUN, _first_line(lab.stderr[-400:])), []
    if _pip(python, "--upgrade", *UPSTREAM).returncode == 0:
        return python, None, []
    problems = []
    for package in UPSTREAM:
        upgrade = _pip(python, "--upgrade", package)
        if upgrade.returncode != 0:
            problems.append(Result(f"install the newest {package}", NOT_RUN, _first_line(upgrade.stderr[-400:])))
    return python, None, problems


def notebook_names() -> list[str]:
    return [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def test_selection() -> list[str]:
    return sorted({str(path.relative_to(ROOT)) for pattern in TESTS for path in ROOT.glob(pattern)})


def run_notebooks(python: Path, names: list[str]) -> list[Result]:
    """Each notebook in a fresh kernel; its result, after a row for the versions it reported, if any differ."""
    results = []
    for name in names:
        print(f"  running notebooks/{name}.ipynb ...", flush=True)
        run = subprocess.run([python, "-c", NOTEBOOK_RUNNER, str(ROOT / "notebooks" / f"{name}.ipynb"),
                              str(ROOT / "notebooks"), CANARY_LINE],
                             capture_output=True, text=True, cwd=ROOT / "notebooks", env=_environment(python))
        outcome: dict[str, Any] | None = (json.loads(run.stdout.strip().splitlines()[-1])
                                          if run.returncode == 0 and run.stdout.strip() else None)
        if outcome and outcome.get("versions"):
            results.append(versions_differ(name, outcome["versions"]))
        results.append(result_from_notebook(name, outcome, run.stderr))
    return results


def run_tests(python: Path, report: Path, selection: list[str]) -> list[Result]:
    report.unlink(missing_ok=True)
    print(f"  running pytest on {len(selection)} file(s) or test(s) ...", flush=True)
    run = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                          f"--junitxml={report}", *selection],
                         capture_output=True, text=True, cwd=ROOT, env=_environment(python))
    if not report.exists():
        return [Result(f"pytest {' '.join(selection)}", NOT_RUN, _first_line((run.stdout + run.stderr)[-400:]))]
    return results_from_junit(report.read_text())


def run_claims(python: Path, folder: Path, notebooks: list[str], tests: list[str]) -> list[Result]:
    return ((run_notebooks(python, notebooks) if notebooks else [])
            + (run_tests(python, folder / "junit.xml", tests) if tests else []))


def _notebook_of(claim: str) -> str | None:
    match = re.fullmatch(r"notebooks/(\w+)\.ipynb \(its asserts\)", claim)
    return match.group(1) if match else None


def against_the_pins(newest: list[Result], on_pins: list[Result]) -> list[Result]:
    """A claim changed only if it fails on the newest releases and holds on the pins. One that fails on the pins
    too says nothing about the new releases (a slow or loaded machine, or the lab itself): it could not run."""
    baseline = {r.claim: r for r in on_pins}
    verdicts = []
    for result in newest:
        pinned = baseline.get(result.claim)
        if result.status == CHANGED and pinned is None:
            result = Result(result.claim, NOT_RUN, f"not run on the pinned versions to compare: {result.detail}")
        elif result.status == CHANGED and pinned is not None and pinned.status != HOLDS:
            result = Result(result.claim, NOT_RUN, f"fails on the pinned versions too: {result.detail}")
        verdicts.append(result)
    return verdicts


def _environment(python: Path) -> dict[str, str]:
    """The canary's interpreter first on PATH, so that kernels started by name run in it; ``CANARY_VARIABLE`` set,
    so that a notebook's version check reports a difference rather than stop the lesson."""
    return {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "VIRTUAL_ENV": str(python.parent.parent), CANARY_VARIABLE: "1"}


def _on_the_pins(
    python: Path, folder: Path, results: list[Result], versions: dict[str, tuple[str, str]]
) -> list[Result]:
    """The claims that changed, run again with the lab's pins restored (no run when no pinned package moved:
    then the newest releases are the pins, and the first run already is the run on the pins)."""
    changed = [r.claim for r in results if r.status == CHANGED]
    if not changed or all(tested == pinned for pinned, tested in versions.values() if pinned != "-"):
        return results
    print(f"Running the {len(changed)} changed claim(s) again with the lab's pins ...", flush=True)
    if _pip(python, "-e", f"{ROOT}[test]").returncode != 0:
        return []
    notebooks = [name for name in map(_notebook_of, changed) if name]
    return run_claims(python, folder, notebooks, [claim for claim in changed if _notebook_of(claim) is None])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m helpers canary", description=__doc__.split("\n")[0])
    parser.add_argument("--tests-only", action="store_true", help="run the pytest selection only, not the notebooks")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ws-leak-lab-canary-") as folder:
        print(f"Installing the lab and the newest {', '.join(UPSTREAM)} in a throwaway environment ...", flush=True)
        started = time.monotonic()
        python, failed, results = install(Path(folder) / "env")
        print(f"  installed in {time.monotonic() - started:.0f} s", flush=True)
        installed = _installed(python)
        pins = pinned_versions()
        versions = {name: (pins.get(name, "-"), installed.get(name, "not installed")) for name in UPSTREAM}
        if failed is not None:
            results.append(failed)
        else:
            print("Running the lab's claims there ...", flush=True)
            notebooks = [] if options.tests_only else notebook_names()
            results += run_claims(python, Path(folder), notebooks, test_selection())
            results = against_the_pins(results, _on_the_pins(python, Path(folder), results, versions))
    print(f"\nThe canary took {time.monotonic() - started:.0f} s.\n")
    print(table(results, versions))
    status = exit_status(results)
    print({0: "Nothing changed.", 1: "Something changed: see the rows marked 'changed'.",
           2: "Some claims could not run: see the rows marked 'could not run'."}[status])
    return status


if __name__ == "__main__":
    sys.exit(main())
