"""Notebook 10's helpers: the tap that records how connections reach a worker, and the recorded results."""

from __future__ import annotations

import json
import socket
import struct

import pytest

from helpers import stack
from helpers.errors import LabError
from helpers.experiments import recorded
from helpers.experiments.proxy import Leaving, ReadTimeout
from helpers.experiments.pubsub import AcrossWorkers
from helpers.stack import nginx
from helpers.stack.tap import Tap
from tests.support.polling import eventually


def test_a_tap_records_a_fin_and_a_reset_and_passes_each_on():
    backend = socket.create_server(("127.0.0.1", 0))
    tap = Tap(backend.getsockname()[1])
    try:
        seen = []
        for reset in (False, True):
            client = socket.create_connection(("127.0.0.1", tap.port))
            relayed, _ = backend.accept()
            client.sendall(b"hello")
            assert relayed.recv(5) == b"hello"
            if reset:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            try:
                seen.append("FIN" if relayed.recv(1) == b"" else "data")
            except ConnectionResetError:
                seen.append("RST")
            relayed.close()
        assert eventually(lambda: tap.ends() == ["FIN", "RST"])
        assert seen == ["FIN", "RST"]
    finally:
        tap.stop()
        backend.close()


@pytest.mark.fast
def test_a_tapped_stack_has_one_worker():
    with pytest.raises(LabError, match="single server"):
        stack.start("helpers.apps.production:app", ["uvicorn", "hypercorn"], tap=True)


@pytest.mark.fast
def test_without_nginx_the_notebook_gets_the_recorded_results_labelled_as_such(monkeypatch):
    monkeypatch.setattr(nginx, "available", lambda: False)

    def measure() -> None:
        raise AssertionError("nothing is measured without nginx")

    ways, label = recorded.measured_or_recorded("ways", measure)
    cuts, _ = recorded.measured_or_recorded("read_timeout", measure)
    redis_run, _ = recorded.measured_or_recorded("redis", measure)
    assert label.startswith("RECORDED with the lab on ") and "nginx 1." in label and "not measured here" in label
    assert all(isinstance(row, Leaving) and isinstance(row.backend_saw, tuple) for row in ways)
    assert [t.server for t in cuts] == ["uvicorn", "hypercorn"] and isinstance(cuts[0], ReadTimeout)
    assert isinstance(redis_run, AcrossWorkers) and redis_run.rows[0].per_client("left") == "1 / 1 / 1"


@pytest.mark.fast
def test_the_results_were_recorded_with_the_notebooks_settings():
    assert json.loads(recorded.RECORDED.read_text())["settings"] == recorded.NOTEBOOK_SETTINGS


def run_as_a_cell(source: str, namespace: dict[str, object]) -> None:
    """Run ``source`` as a notebook cell: a last expression that is not None is shown (here, printed)."""
    import ast

    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    assert last is None or isinstance(last, ast.Expr)
    exec(compile(tree, "notebook 10", "exec"), namespace)
    if last is not None:
        shown = eval(compile(ast.Expression(last.value), "notebook 10", "eval"), namespace)
        if shown is not None:
            print(shown)


def test_notebook_10_runs_top_to_bottom_on_the_recorded_results_where_nginx_is_missing(monkeypatch, capsys):
    """Every cell, its asserts included, in this process, with nginx reported missing: nothing is started."""
    from helpers.notebook_runner import code_cells, notebook_path

    monkeypatch.setattr(nginx, "available", lambda: False)
    namespace: dict[str, object] = {}
    for cell in code_cells(notebook_path("10")):
        run_as_a_cell(cell, namespace)
    printed = capsys.readouterr().out
    assert "apt-get install nginx" in printed and printed.count("Results RECORDED with the lab on ") == 4
    assert stack.current() is None
