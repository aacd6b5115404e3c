"""Python environments other than the lab's, for ``--python`` tests: the time machine's historical
stacks, and a current stack on other versions than the lab's pins (built once into the lab's cache)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import timemachine

CURRENT_OTHER = ("fastapi==0.115.12", "uvicorn==0.34.3", "websockets==15.0.1")
"""A current stack on versions the lab does not pin: the checker's agent must work there too."""


SERVERS = ("fastapi==0.165.0", "starlette==1.10.0", "uvicorn==0.54.0", "websockets==17.4", "wsproto==1.3.2",
           "hypercorn==0.18.0", "granian==2.8.9", "daphne==4.2.3")
"""The lab's pins with every server of issue 9, until the lab's own environment holds them."""


def _environment(name: str, pins: tuple[str, ...]) -> Path:
    return timemachine.build_environment(timemachine.cache_dir() / "stacks" / name, pins, name=name)


def current_other() -> Path:
    """The Python of a throwaway venv holding CURRENT_OTHER (installed from the package index on first use)."""
    return _environment("leakcheck-current-other", CURRENT_OTHER)


def every_server() -> Path:
    """The Python of a venv holding the lab's pins and every server (installed on first use)."""
    return _environment("leakcheck-every-server", SERVERS)


def historical(stack: str) -> Path:
    return timemachine.environment(stack)


def leakcheck_json(python: str, *args: str, timeout: float) -> tuple[int, dict]:
    """The checker's command line with its server side in ``python``: exit status and JSON report."""
    done = subprocess.run([sys.executable, "-m", "helpers.leakcheck", *args, "--python", python, "--json",
                           "--clients", "2"],
                          capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode in (0, 1, 3), done.stderr
    return done.returncode, json.loads(done.stdout)
