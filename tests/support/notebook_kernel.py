"""Running notebook code in a real Jupyter kernel, as a learner's JupyterLab would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from helpers.notebook_runner import (  # shared with the benchmarks
    NOTEBOOKS as NOTEBOOKS,
)
from helpers.notebook_runner import (
    TRANSPORT_ENCRYPTION as TRANSPORT_ENCRYPTION,
)
from helpers.notebook_runner import (
    code_cells as code_cells,
)
from helpers.notebook_runner import (
    notebook_paths as notebook_paths,
)

SNAPSHOT = """
import asyncio, json, threading, psutil
from helpers import clients, servers as lab_server
print(json.dumps({
    "threads": sorted(t.name for t in threading.enumerate()),
    "fds": psutil.Process().num_fds(),
    "kernel_tasks": len(asyncio.all_tasks()),
    "open_clients": clients.open_clients(),
    "lab_server_running": lab_server.current() is not None and lab_server.current().running,
    "listening": sorted([c.laddr.ip, c.laddr.port] for c in psutil.Process().net_connections("inet")
                        if c.status == "LISTEN"),
}))
"""


def _numbered_code_cells(notebook: nbformat.NotebookNode) -> Iterator[tuple[int, str, list[dict[str, Any]]]]:
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for number, cell in enumerate(code, start=1):
        yield number, (cell.source.strip().splitlines() or [""])[0], cell.get("outputs", [])


def stray_tracebacks(notebook: nbformat.NotebookNode) -> tuple[str, ...]:
    """Tracebacks printed under a cell without being its error (a server's log, a thread's report)."""
    return tuple(
        f"under code cell {number} ({first_line!r}): "
        f"{[line for line in output['text'].splitlines() if line.strip()][-1]}"
        for number, first_line, outputs in _numbered_code_cells(notebook)
        for output in outputs
        if output.get("output_type") == "stream" and output.get("name") == "stderr"
        and ("Traceback (most recent call last)" in output["text"] or "Exception in ASGI application" in output["text"])
    )


def first_error(notebook: nbformat.NotebookNode) -> str | None:
    """The first cell that shows an error, named as a reader finds it: code cell number, first line, the error."""
    for number, first_line, outputs in _numbered_code_cells(notebook):
        for output in outputs:
            if output.get("output_type") == "error":
                return f"code cell {number} ({first_line!r}) raised {output['ename']}: {output['evalue']}"
    return None


class Kernel:
    def __init__(self, client: BlockingKernelClient, manager: KernelManager) -> None:
        self.client = client
        self.manager = manager

    def run(self, code: str, timeout: float = 60.0) -> tuple[dict[str, Any], str]:
        """Execute one cell; return the reply content and everything it printed."""
        printed: list[str] = []

        def keep(message: dict[str, Any]) -> None:
            content = message["content"]
            if message["msg_type"] == "stream":
                printed.append(content["text"])
            elif message["msg_type"] == "error":
                printed.append("\n".join(content["traceback"]))

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=keep)
        return reply["content"], "".join(printed)

    def run_ok(self, code: str, timeout: float = 60.0) -> str:
        content, printed = self.run(code, timeout)
        assert content["status"] == "ok", printed
        return printed

    def snapshot(self) -> dict[str, Any]:
        return dict(json.loads(self.run_ok(SNAPSHOT).strip().splitlines()[-1]))


@contextmanager
def kernel(cwd: Path = NOTEBOOKS) -> Iterator[Kernel]:
    manager = KernelManager(kernel_name="python3", transport_encryption=TRANSPORT_ENCRYPTION)
    manager.start_kernel(cwd=str(cwd))
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield Kernel(client, manager)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
