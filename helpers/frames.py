"""Whether a live figure draws its frames as the experiment goes, or only its last one.

A learner watches every frame. The suite's headless runs (``helpers.notebook_runner.execute(...,
final_frames_only=True)``) have no one watching, and a frame costs the kernel CPU: about half of notebook 07's CPU
time and 03's goes to drawing them. Those runs set ``FINAL_FRAMES_ONLY`` in the kernel's environment; the saved
notebook still holds every figure's last frame, which is what its output keeps in any case. The runs in JupyterLab
draw every frame.
"""

from __future__ import annotations

import os

FINAL_FRAMES_ONLY = "LAB_FINAL_FRAMES_ONLY"
"""The environment variable: "1" draws only the last frame of each live figure."""


def every_frame() -> bool:
    """Whether live figures draw their frames as they go (the default), rather than only their last one."""
    return os.environ.get(FINAL_FRAMES_ONLY) != "1"
