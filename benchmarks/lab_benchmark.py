"""Figures for how the lab performs on this machine. A script that prints, not a test: nothing here asserts.

    .venv/bin/python -m benchmarks.lab_benchmark            (from the repository's root)
    .venv/bin/python -m benchmarks.lab_benchmark --quick    (skip running every notebook)

1. each notebook executed headless, and the whole collection;
2. kernel start to the first live plot frame;
3. churn rate (sessions per second) of the in-kernel set-up (server and clients on threads of one
   process) against the same app under a standalone uvicorn process driven by a separate client process;
4. the probe's sampling cost per 1,000 live tasks;
5. the leak checker's time per endpoint.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from traitlets.config import Config

from tests.notebook_kernel import NOTEBOOKS, TRANSPORT_ENCRYPTION, code_cells, notebook_paths

ROOT = Path(__file__).resolve().parent.parent
CHURN_APP, CHURN_PATH = "helpers.apps.fixed:app", "/ws/chat"
CHURN_SESSIONS, CHURN_CONCURRENCY = 2000, 100


def notebook_seconds(path: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}},
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
        if not first_frame and message["msg_type"] in ("display_data", "update_display_data"):
            if "image/png" in message["content"].get("data", {}):
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
    from helpers.server import serve

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
        [sys.executable, "-m", "uvicorn", CHURN_APP, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
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
    from helpers.server import serve

    server = serve(seed.app)
    try:
        async def park(n: int) -> None:
            for _ in range(n):
                asyncio.ensure_future(asyncio.sleep(3600))

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


def leakcheck_times() -> list[tuple[str, str, float]]:
    from helpers.leakcheck import check

    rows = []
    for app, path in [("helpers.apps.leaks:app", "/ws/prices"), ("helpers.apps.leaks:app", "/ws/chat"),
                      ("helpers.apps.seed:app", "/ws/metrics"), ("helpers.apps.fixed:app", "/ws/prices"),
                      ("helpers.apps.fixed:app", "/ws/room/1")]:
        report = check(app, path)
        rows.append((f"{app} {path}", report.verdict, report.seconds))
    return rows


def main() -> None:
    if "--quick" not in sys.argv:
        total = 0.0
        for path in notebook_paths():
            seconds = notebook_seconds(path)
            total += seconds
            print(f"notebook {path.stem:<22} {seconds:6.1f} s headless", flush=True)
        print(f"notebook collection            {total:6.1f} s", flush=True)
    print(f"kernel start to first live frame (01_predict): {kernel_start_to_first_frame(NOTEBOOKS / '01_predict.ipynb'):.2f} s", flush=True)
    inside, outside = in_kernel_churn(), standalone_churn()
    print(f"churn, {CHURN_SESSIONS} sessions, {CHURN_CONCURRENCY} at a time, {CHURN_APP} {CHURN_PATH}:")
    print(f"  in-kernel (server and clients on threads of one process): {inside:7.0f} sessions/s")
    print(f"  standalone uvicorn process + separate client process:      {outside:7.0f} sessions/s")
    print(f"  ratio in-kernel / standalone: {inside / outside:.2f}", flush=True)
    per_thousand, tasks = probe_cost_per_thousand_tasks()
    print(f"probe: {per_thousand:.2f} ms per sample per 1,000 live tasks (measured with {tasks} tasks)", flush=True)
    for name, verdict, seconds in leakcheck_times():
        print(f"leak checker: {name:<40} {verdict:<6} {seconds:5.1f} s")


if __name__ == "__main__":
    main()
