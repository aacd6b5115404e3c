"""The headless runner: a run no one watches tells its kernel to draw only each live figure's last frame."""


from pathlib import Path

import nbformat

from helpers.frames import FINAL_FRAMES_ONLY
from helpers.notebook_runner import execute


def _notebook(folder: Path) -> Path:
    path = folder / "frames.ipynb"
    cell = nbformat.v4.new_code_cell("from helpers.frames import every_frame\nprint('every frame:', every_frame())")
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    return path


def _printed(run) -> str:
    assert run.passed, run.failure
    return "".join(output.get("text", "") for output in run.notebook.cells[0].outputs)


def test_a_run_no_one_watches_makes_its_kernel_draw_only_the_last_frames(tmp_path, monkeypatch):
    monkeypatch.delenv(FINAL_FRAMES_ONLY, raising=False)
    assert _printed(execute(_notebook(tmp_path), final_frames_only=True)).strip() == "every frame: False"


def test_by_default_the_kernel_draws_every_frame(tmp_path, monkeypatch):
    monkeypatch.delenv(FINAL_FRAMES_ONLY, raising=False)
    assert _printed(execute(_notebook(tmp_path))).strip() == "every frame: True"
