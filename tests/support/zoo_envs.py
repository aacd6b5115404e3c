"""Python environments other than the lab's, for ``--python`` tests: the time machine's historical
stacks, and a current stack on other versions than the lab's pins (built once into the lab's cache)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import timemachine

CURRENT_OTHER = ("fastapi==0.115.12", "uvicorn==0.34.3", "websockets==15.0.1")
"""A current stack on versions the lab does not pin: the checker's agent must work there too."""


SERVERS = ("fastapi==0.165.0", "starlette==1.10.0", "uvicorn==0.55.0", "websockets==17.4", "wsproto==1.3.2",
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


def leakcheck_json(python: str, *args: str, timeout: float) -> tuple[int, dict[str, Any]]:
    """The checker's command line with its server side in ``python``: exit status and JSON report."""
    done = subprocess.run([sys.executable, "-m", "ws_leakcheck", *args, "--python", python, "--json",
                           "--clients", "2"],
                          capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode in (0, 1, 3), done.stderr
    return done.returncode, json.loads(done.stdout)


TOOL = Path(__file__).resolve().parents[2] / "ws-leakcheck"

USER_PROJECT = ("fastapi==0.165.0", "uvicorn[standard]==0.55.0", "pytest==9.2.0", "psutil==7.2.2")
"""A FastAPI project's own environment, without the lab: the tool is installed into a copy of it."""


def build_distributions(out: Path) -> tuple[Path, Path]:
    """Build ws-leakcheck's wheel and sdist into ``out`` (as ``python -m build`` does in CI): (wheel, sdist)."""
    # From a copy: setuptools stages an sdist inside the source folder, so two workers building the checkout's own
    # folder at once remove each other's staging tree (CI failed on that: 'No such file ... clients.py').
    source = out / "source"
    shutil.copytree(TOOL, source, ignore=shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__"))
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return next(out.glob("*.whl")), next(out.glob("*.tar.gz"))


def user_project_with(wheel: Path, home: Path) -> Path:
    """The Python of a new venv at ``home`` that sees USER_PROJECT's packages (a cached venv, through a .pth
    file) and has ``wheel`` installed into it with pip's --python: a project's environment, the tool added."""
    import venv

    base = _environment("leakcheck-user-project", USER_PROJECT)
    venv.EnvBuilder(with_pip=False).create(home)
    python = home / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    base_site = subprocess.run([base, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "user_project.pth").write_text(base_site + "\n")
    script = (base.parent / "pytest").read_text().split("\n", 1)[1]  # the `pytest` command, for this venv
    (home / "bin" / "pytest").write_text(f"#!{python}\n{script}")
    (home / "bin" / "pytest").chmod(0o755)
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                           "--disable-pip-version-check", "--no-index", "--no-deps", str(wheel)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return python
