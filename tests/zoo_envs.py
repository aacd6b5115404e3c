"""Python environments other than the lab's, for ``--python`` tests: the time machine's historical
stacks, and a current stack on other versions than the lab's pins (built once into the lab's cache)."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

from helpers import timemachine

CURRENT_OTHER = ("fastapi==0.115.12", "uvicorn==0.34.3", "websockets==15.0.1")
"""A current stack on versions the lab does not pin: the checker's agent must work there too."""


def current_other() -> Path:
    """The Python of a throwaway venv holding CURRENT_OTHER (installed from the package index on first use)."""
    home = timemachine.cache_dir() / "stacks" / "leakcheck-current-other"
    python, stamp = home / "bin" / "python", home / ".installed"
    if stamp.exists() and stamp.read_text() == " ".join(CURRENT_OTHER) and python.exists():
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    done = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *CURRENT_OTHER],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise timemachine.TimeMachineUnavailable(f"Could not install {' '.join(CURRENT_OTHER)}: {done.stderr.strip()[-200:]}")
    stamp.write_text(" ".join(CURRENT_OTHER))
    return python


def historical(stack: str) -> Path:
    return timemachine.environment(stack)
