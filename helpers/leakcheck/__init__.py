"""Check a WebSocket endpoint for leaks: ``ws-leakcheck MODULE:APP PATH`` or ``python -m helpers.leakcheck``.

The checker serves the app on 127.0.0.1 (an agent, in this process or in the interpreter given
by ``--python``), and, for each way a client can leave (clean, FIN, RST, silent) in turn, connects
real clients, lets them leave, waits until what they left behind has ended or stopped ending, and
collects what outlived them: handler coroutines, tasks, WebSocket objects and other state retained
per session, unhandled exceptions, CPU, a frozen loop.

Verdict: ``leak`` if anything never ended or stays per visitor, ``noisy`` if nothing did but
disconnects produced unhandled exceptions, ``untested`` if every handshake was refused,
``clean`` otherwise. Exit status 0 clean, 1 leak, 3 noisy, 5 untested, 2 usage error,
4 the checker itself failed.
"""

from helpers.leakcheck.checking import CheckerFailed, Options, check, run
from helpers.leakcheck.cli import main
from helpers.leakcheck.evidence import Retention, WayEvidence
from helpers.leakcheck.report import EXIT_CODES, Report, Run

__all__ = [
    "EXIT_CODES", "CheckerFailed", "Options", "Report", "Retention", "Run", "WayEvidence", "check", "main", "run"
]
