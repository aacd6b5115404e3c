"""Which versions ran: the behaviour taught here depends on starlette, websockets and the server."""

from __future__ import annotations

import platform
import re
from importlib import metadata

DISTRIBUTION = "ws-leak-lab"
SHOWN = ("fastapi", "starlette", "uvicorn", "websockets", "wsproto", "ipykernel", "matplotlib")
SERVERS_SHOWN = ("uvicorn", "hypercorn", "granian", "daphne")
"""The servers the lab runs (``helpers.servers``): what happens to a leaked handler depends on them."""


def pins() -> dict[str, str]:
    """The exact versions the lab pins, read from its installed metadata (pyproject.toml)."""
    found: dict[str, str] = {}
    for requirement in metadata.requires(DISTRIBUTION) or []:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^;\s]+)", requirement.strip())
        if match and "extra ==" not in requirement:
            found[match.group(1).lower()] = match.group(2)
    return found


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def version_table() -> list[tuple[str, str, str]]:
    """(package, pinned, installed) for Python and the packages whose versions change the lesson."""
    pinned = pins()
    rows = [("python", ">=3.11", platform.python_version())]
    rows += [(name, pinned.get(name, "-"), installed(name) or "missing")
             for name in SHOWN + tuple(n for n in SERVERS_SHOWN if n not in SHOWN)]
    return rows


def mismatches() -> list[str]:
    """Packages installed at another version than the lab pins."""
    return [f"{name} {have} (pinned {want})" for name, want, have in version_table()[1:]
            if want != "-" and want != have]


def show_versions() -> None:
    print(f"{'package':<12}{'pinned':>10}{'running':>12}")
    for name, want, have in version_table():
        flag = "" if want in ("-", have) or name == "python" else "  <- differs"
        print(f"{name:<12}{want:>10}{have:>12}{flag}")
