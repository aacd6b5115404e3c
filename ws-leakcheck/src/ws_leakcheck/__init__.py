"""Check a WebSocket endpoint for leaks: ``ws-leakcheck MODULE:APP PATH`` or ``python -m ws_leakcheck``.

The checker serves the app on 127.0.0.1 (an agent, in this process or in the interpreter given
by ``--python``), and, for each way a client can leave (clean, FIN, RST, silent) in turn, connects
real clients, lets them leave, waits until what they left behind has ended or stopped ending, and
collects what outlived them: handler coroutines, tasks, WebSocket objects and other state retained
per session, unhandled exceptions, CPU, a frozen loop.

In a test suite: ``from ws_leakcheck import assert_no_leak`` (or the ``leakcheck`` fixture of the
pytest plugin this package registers).

The names below are imported when first used, so that ``import ws_leakcheck.agent`` (the
standard-library agent, which the lab's servers also use) loads neither the clients nor the
command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "EXIT_CODES": "ws_leakcheck.report",
    "Report": "ws_leakcheck.report",
    "Results": "ws_leakcheck.report",
    "Retention": "ws_leakcheck.evidence",
    "WayEvidence": "ws_leakcheck.evidence",
    "Options": "ws_leakcheck.observe",
    "check": "ws_leakcheck.observe",
    "run": "ws_leakcheck.observe",
    "main": "ws_leakcheck.cli",
    "UsageError": "ws_leakcheck.errors",
    "CheckerFailed": "ws_leakcheck.errors",
    "LeakFound": "ws_leakcheck.testing",
    "assert_no_leak": "ws_leakcheck.testing",
}

__all__ = [
    "EXIT_CODES",
    "CheckerFailed",
    "LeakFound",
    "Options",
    "Report",
    "Results",
    "Retention",
    "UsageError",
    "WayEvidence",
    "__version__",
    "assert_no_leak",
    "check",
    "main",
    "run",
]

if TYPE_CHECKING:
    from ws_leakcheck.cli import main
    from ws_leakcheck.errors import CheckerFailed, UsageError
    from ws_leakcheck.evidence import Retention, WayEvidence
    from ws_leakcheck.observe import Options, check, run
    from ws_leakcheck.report import EXIT_CODES, Report, Results
    from ws_leakcheck.testing import LeakFound, assert_no_leak


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ws_leakcheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
