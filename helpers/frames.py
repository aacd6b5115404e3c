"""Whether a live figure draws its frames as the experiment goes, or only its last one.

A learner watches every frame. Two of the suite's runs have no one watching: the notebooks on the other Pythons
(``tests/support/other_pythons.py``) and the classroom test's two learners (``tests/classroom/test_two_learners.py``).
They call ``helpers.notebook_runner.execute(..., final_frames_only=True)``, which sets ``FINAL_FRAMES_ONLY`` in the
kernel's environment: a frame costs the kernel CPU (about half of notebook 03's CPU time, measured with
``benchmarks.sizing``), and the saved notebook keeps only each figure's last frame in any case. Every other run draws
every frame unless the variable is in its environment: the runs in JupyterLab, the suite's headless fallback without
Chromium, ``benchmarks.sizing`` and the stress script.
"""

from __future__ import annotations

import os

FINAL_FRAMES_ONLY = "LAB_FINAL_FRAMES_ONLY"
"""The environment variable: "1" draws only the last frame of each live figure."""


def every_frame() -> bool:
    """Whether live figures draw their frames as they go (the default), rather than only their last one."""
    return os.environ.get(FINAL_FRAMES_ONLY) != "1"
