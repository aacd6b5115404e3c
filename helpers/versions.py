"""Which versions ran: the behaviour taught here depends on starlette, websockets and the server."""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata

from helpers.pythons import TESTED_MINORS

DISTRIBUTION = "ws-leak-lab"
SHOWN = ("fastapi", "starlette", "uvicorn", "websockets", "wsproto", "ipykernel", "matplotlib")


TESTED_RANGE = "-".join(f"{major}.{minor}" for major, minor in (TESTED_MINORS[0], TESTED_MINORS[-1]))
"""The Pythons every notebook is run on in CI, shown in the version table's "pinned" column."""


def python_note(version: tuple[int, int]) -> str:
    """What the version table says of a Python: whether CI runs the notebooks on it. It says nothing of what differs
    between Pythons: notebook 09 asks the learner to predict that."""
    return "" if version in TESTED_MINORS else "  <- not tested"


def pins() -> dict[str, str]:
    """The exact versions the lab pins, read from its installed metadata (pyproject.toml)."""
    found: dict[str, str] = {}
    for requirement in metadata.requires(DISTRIBUTION) or []:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^;\s]+)", requirement.strip())
        if match and "extra ==" not in requirement:
            found[match.group(1).lower()] = match.group(2)
    return found


def installed(name: str) -> str | None:
    """The installed version of the distribution ``name``, or None if it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def version_table() -> list[tuple[str, str, str]]:
    """(package, pinned, installed) for Python and the packages whose versions change the lesson."""
    from helpers.servers import SERVERS  # the servers the lab runs: what happens to a leaked handler depends on them

    pinned = pins()
    rows = [("python", TESTED_RANGE, platform.python_version())]
    rows += [(name, pinned.get(name, "-"), installed(name) or "missing")
             for name in SHOWN + tuple(n for n in SERVERS if n not in SHOWN)]
    return rows


def mismatches() -> list[str]:
    """Packages installed at another version than the lab pins."""
    return [f"{name} {have} (pinned {want})" for name, want, have in version_table()[1:]
            if want != "-" and want != have]


CANARY = "LAB_CANARY"
"""Set (to anything but empty) by the canary, which runs the lessons on the newest releases on purpose."""


def check_pins() -> list[str]:
    """Stop the notebook (AssertionError) if a package differs from the lab's pins; return the differences.

    Under the canary (``LAB_CANARY`` set) a difference is printed as what it is, and the lesson runs on,
    so that its own asserts say which claims still hold on the newer releases."""
    differ = mismatches()
    if differ and os.environ.get(CANARY):
        print(f"Canary run: versions differ from the pins ({', '.join(differ)}); the lesson runs on.")
    elif differ:
        raise AssertionError(f"Installed versions differ from the lab's pins: {differ}")
    return differ


def show_versions() -> None:
    """Print Python's version and, for each package the lessons depend on, the pinned and the running version."""
    print(f"{'package':<12}{'pinned':>10}{'running':>12}")
    for name, want, have in version_table():
        flag = "" if want in ("-", have) else "  <- differs"
        if name == "python":
            flag = python_note(sys.version_info[:2])
        print(f"{name:<12}{want:>10}{have:>12}{flag}")
