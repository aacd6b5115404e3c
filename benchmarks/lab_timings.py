"""Print how long the lab makes a learner wait: each notebook headless, and kernel start to first live frame.

    .venv/bin/python -m benchmarks.lab_timings      (from the repository's root)

Figures, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import time

import nbformat
from nbclient import NotebookClient

from tests.notebook_kernel import NOTEBOOKS, code_cells, notebook_paths


def notebook_seconds(path) -> float:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.monotonic()
    client.execute()
    return time.monotonic() - start


def kernel_start_to_first_frame(path) -> float:
    """From asking for a kernel to the first PNG frame the notebook displays, running cells in order."""
    from jupyter_client.manager import KernelManager

    start = time.monotonic()
    manager = KernelManager(kernel_name="python3")
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


def main() -> None:
    total = 0.0
    for path in notebook_paths():
        seconds = notebook_seconds(path)
        total += seconds
        print(f"{path.stem:<24} {seconds:6.1f} s headless")
    print(f"{'all notebooks':<24} {total:6.1f} s")
    print(f"kernel start to first live frame (01_predict): {kernel_start_to_first_frame(NOTEBOOKS / '01_predict.ipynb'):.1f} s")


if __name__ == "__main__":
    main()
