"""Figures for how the lab performs on this machine. A script that prints, not a test: nothing here asserts.

    .venv/bin/python -m benchmarks.lab_benchmark                  (from the repository's root)
    .venv/bin/python -m benchmarks.lab_benchmark --quick          (skip running every notebook)
    .venv/bin/python -m benchmarks.lab_benchmark --repeats 5      (runs per figure; 3 by default)

Every figure is measured ``--repeats`` times and printed as min / median / max, since one run on a
shared machine says little (two single runs of the churn ratio once gave 0.36 and 0.78). The two
sides of a ratio are measured alternately (in-kernel, standalone, in-kernel, ...), so that a change
in the machine's load falls on both sides, and the ratio is given per pair.
    .venv/bin/python -m benchmarks.lab_benchmark --leakcheck  (only the leak checker's times)

1. each notebook executed headless, and the whole collection;
2. kernel start to the first live plot frame;
3. churn rate (sessions per second) of the in-kernel set-up (server and clients on threads of one
   process) against the same app under a standalone uvicorn process driven by a separate client process;
4. the probe's sampling cost per 1,000 live tasks;
5. the leak checker's time per endpoint (every endpoint of its tests, default settings), with the
   min/median/max per verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from traitlets.config import Config

from helpers.notebook_runner import NOTEBOOKS, TRANSPORT_ENCRYPTION, code_cells, notebook_paths

ROOT = Path(__file__).resolve().parent.parent
CHURN_APP, CHURN_PATH = "helpers.apps.fixed:app", "/ws/chat"
CHURN_SESSIONS, CHURN_CONCURRENCY = 2000, 100


def notebook_seconds(path: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}},
                            config=Config({"KernelManager": {"transport_encryption": TRANSPORT_ENCRYPTION}}))
    start = time.monotonic()
    client.execute()
    return time.monotonic() - start


def kernel_start_to_first_frame(path: Path) -> float:
    """From asking for a kernel to the first PNG frame the notebook displays, running cells in order."""
    from jupyter_client.manager import KernelManager

    start = time.monotonic()
    manager = KernelManager(kernel_name="python3", transport_encryption=TRANSPORT_ENCRYPTION)
    manager.start_kernel(cwd=str(NOTEBOOKS))
    client = manager.blocking_client()
    client.start_channels()
    first_frame: list[float] = []

    def watch(message) -> None:
        if (not first_frame and message["msg_type"] in ("display_data", "update_display_data")
                and "image/png" in message["content"].get("data", {})):
            first_frame.append(time.monotonic() - start)

    try:
        client.wait_for_ready(timeout=60)
        for cell in code_cells(path):
            client.execute_interactive(cell, timeout=120, output_hook=watch)
            if first_frame:
                break
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return first_frame[0] if first_frame else float("nan")


def in_kernel_churn() -> float:
    from benchmarks.churn_client import churn
    from helpers import clients
    from helpers.servers import serve

    server = serve(CHURN_APP)
    try:
        loop = clients._client_loop()
        return loop.call(churn(server.url(CHURN_PATH), CHURN_SESSIONS, CHURN_CONCURRENCY), timeout=600)
    finally:
        server.stop()


def standalone_churn() -> float:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", CHURN_APP, "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.churn_client", f"ws://127.0.0.1:{port}{CHURN_PATH}",
             str(CHURN_SESSIONS), str(CHURN_CONCURRENCY)],
            cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
        )
        return float(done.stdout.strip())
    finally:
        server.terminate()
        server.wait(10)


def probe_cost_per_thousand_tasks() -> tuple[float, int]:
    from helpers.apps import seed
    from helpers.probe import Probe
    from helpers.servers import serve

    server = serve(seed.app)
    try:
        async def park(n: int) -> None:
            for _ in range(n):
                asyncio.ensure_future(asyncio.sleep(3600))  # noqa: RUF006 - parked on purpose; their timers hold them

        server.run_in_loop(park(1000))
        probe = Probe(server, seed.get_metrics)
        tasks = len(server.tasks())
        timings = []
        for _ in range(50):
            started = time.perf_counter()
            probe.sample()
            timings.append(time.perf_counter() - started)
        return statistics.median(timings) * 1000 * 1000 / tasks, tasks
    finally:
        server.stop()


def leakcheck_times() -> list[tuple[str, str, str, float]]:
    """(route shape or lesson, endpoint, verdict, seconds) for every endpoint of the checker's tests, default
    settings."""
    from tests.leakcheck.test_lesson_endpoints import ZOO
    from tests.leakcheck.test_shapes import SHAPES
    from ws_leakcheck import check

    cases = ([("lessons and zoo", app, path) for app, path, _ in ZOO]
             + [(shape, app, path) for shape, app, path, _ in SHAPES])
    rows = []
    for shape, app, path in cases:
        with contextlib.redirect_stdout(io.StringIO()):  # what the endpoints print is not a figure
            report = check(app, path)
        rows.append((shape, f"{app} {path}", report.verdict, report.seconds))
    return rows


def spread(values: list[float], digits: int = 1) -> str:
    """``min / median / max`` of repeated measurements, with the number of runs."""
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"{low:.{digits}f} / {middle:.{digits}f} / {high:.{digits}f} (min / median / max of {len(values)})"


def repeats() -> int:
    if "--repeats" in sys.argv:
        return max(1, int(sys.argv[sys.argv.index("--repeats") + 1]))
    return 3


def print_leakcheck_times() -> None:
    rows = leakcheck_times()
    for shape, name, verdict, seconds in rows:
        print(f"leak checker: {verdict:<8} {seconds:5.1f} s  {name}  ({shape})", flush=True)
    for verdict in ("leak", "noisy", "clean", "untested"):
        times = [seconds for _, _, v, seconds in rows if v == verdict]
        if times:
            print(f"leak checker, {verdict:<6} verdicts ({len(times):2d}): min {min(times):4.1f} s, "
                  f"median {statistics.median(times):4.1f} s, max {max(times):4.1f} s")
    print_leakcheck_every_server()


def print_leakcheck_every_server() -> None:
    """``--server all`` on the article's loop and on the pattern: a verdict per server, and the whole run's time."""
    import importlib.util

    from ws_leakcheck import run
    from ws_leakcheck.servers import SERVERS

    servers = [s for s in SERVERS if importlib.util.find_spec(s)]
    for app, path in (("helpers.apps.seed:app", "/ws/metrics"), ("helpers.apps.fixed:app", "/ws/prices")):
        with contextlib.redirect_stdout(io.StringIO()):
            result = run(app, [path], servers=servers)
        verdicts = ", ".join(f"{r.server} {r.verdict} ({r.seconds:.1f} s)" for r in result.reports)
        print(f"leak checker --server all, {app} {path}: {result.verdict} in {result.seconds:.1f} s: {verdicts}",
              flush=True)


def main() -> None:
    if "--leakcheck" in sys.argv:
        print_leakcheck_times()
        return
    runs = repeats()
    if "--quick" not in sys.argv:
        totals = [0.0] * runs
        for path in notebook_paths():
            seconds = [notebook_seconds(path) for _ in range(runs)]
            totals = [t + s for t, s in zip(totals, seconds, strict=True)]
            print(f"notebook {path.stem:<22} {spread(seconds)} s headless", flush=True)
        print(f"notebook collection            {spread(totals)} s", flush=True)
    frames = [kernel_start_to_first_frame(NOTEBOOKS / "01_predict.ipynb") for _ in range(runs)]
    print(f"kernel start to first live frame (01_predict): {spread(frames, 2)} s", flush=True)
    inside: list[float] = []
    outside: list[float] = []
    for _ in range(runs):   # interleaved: in-kernel, standalone, in-kernel, standalone, ...
        inside.append(in_kernel_churn())
        outside.append(standalone_churn())
    print(f"churn, {CHURN_SESSIONS} sessions, {CHURN_CONCURRENCY} at a time, {CHURN_APP} {CHURN_PATH}:")
    print(f"  in-kernel (server and clients on threads of one process): {spread(inside, 0)} sessions/s")
    print(f"  standalone uvicorn process + separate client process:      {spread(outside, 0)} sessions/s")
    print("  ratio in-kernel / standalone, per pair: "
          f"{spread([i / o for i, o in zip(inside, outside, strict=True)], 2)}", flush=True)
    probes = [probe_cost_per_thousand_tasks() for _ in range(runs)]
    print(f"probe: {spread([p for p, _ in probes], 2)} ms per sample per 1,000 live tasks "
          f"(measured with {probes[0][1]} tasks)", flush=True)
    print_leakcheck_times()


if __name__ == "__main__":
    main()
