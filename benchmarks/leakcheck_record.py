"""Record the checker's observations of real endpoints, for the fast tier that replays them.

    .venv/bin/python -m benchmarks.leakcheck_record   # about 3 minutes; rewrites tests/support/leakcheck_recorded.json

Each case is served by a real server and left by real clients, as every check is; the JSON keeps each report's
observations (``Report.to_dict()``), and ``tests/leakcheck/test_verdict.py`` decides their verdicts anew from them
in milliseconds. Record again after changing what the checker observes; a change of the decision alone
(``ws_leakcheck.verdict``) is tested by replaying.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "support" / "leakcheck_recorded.json"
PROJECT = dict(python=sys.executable, app_dir=str(ROOT / "tests" / "support" / "zoo_project"))
"""tests/support/zoo_project has a `helpers` package of its own: its app is served in a process of its own."""

CASES: list[tuple[str, str, str, dict[str, Any], str]] = [
    # (name, app, path, check() options, the verdict expected)
    ("handlers never end", "helpers.apps.leaks:app", "/ws/prices", {}, "leak"),
    ("a registry keeps departed clients", "tests.support.zoo:app", "/dict-registry", {}, "leak"),
    ("an entry per visitor, never removed", "tests.support.zoo_shapes:timing", "/remember-visitors", {}, "leak"),
    ("an orphaned task", "tests.support.zoo:app", "/ensure-future-orphan", {}, "leak"),
    ("a frozen loop", "tests.support.zoo_shapes:timing", "/spin", {"python": sys.executable}, "leak"),
    ("a poller that never notices", "tests.support.zoo_shapes:timing", "/poller-forever", {"ways": ("fin",)}, "leak"),
    ("blocks the graceful shutdown", "helpers.apps.production:app", "/ws/prices", {"ways": ("fin",)}, "leak"),
    ("ended only by daphne's close timeout", "helpers.apps.production:app", "/ws/prices",
     {"server": "daphne", "ways": ("fin",), "rounds": False}, "leak"),
    ("the except block raises", "chat.main:app", "/ws/chat", {**PROJECT, "ways": ("clean", "fin")}, "noisy"),
    ("a send on a closed connection raises", "helpers.apps.seed:app", "/ws/metrics", {}, "noisy"),
    ("every handshake refused", "tests.support.zoo_shapes:timing", "/reject", {}, "untested"),
    ("a wrong first message", "chat.main:app", "/ws/secure-feed?token=secret-token",
     {**PROJECT, "send": ['{"typ": "hello"}']}, "untested"),
    ("returns at once", "tests.support.zoo_shapes:timing", "/accept-then-return", {}, "untested"),
    ("no way of leaving could run", "helpers.apps.fixed:app", "/ws/prices",
     {"server": "hypercorn", "ways": ("silent",)}, "untested"),
    ("the pattern", "helpers.apps.fixed:app", "/ws/prices", {}, "clean"),
    ("a poller that notices within two polls", "tests.support.zoo_shapes:timing", "/poller-notices",
     {"ways": ("fin", "rst")}, "clean"),
    ("a one-time cache", "tests.support.zoo_shapes:timing", "/cache-once", {}, "clean"),
]


def _portable(report: dict[str, Any]) -> dict[str, Any]:
    """This machine's paths out of the recording."""
    report["options"] = {**report["options"], "python": Path(report["options"]["python"]).name}
    return report


def main() -> int:
    from ws_leakcheck import check

    recorded = []
    for name, app, path, options, expected in CASES:
        started = time.monotonic()
        report = check(app, path, clients=2, **options)
        seconds = time.monotonic() - started
        mark = "" if report.verdict == expected else f"   <- expected {expected}"
        print(f"{report.verdict:<9} {seconds:5.1f} s  {name}{mark}", flush=True)
        recorded.append({"name": name, "expected": expected, "report": _portable(report.to_dict())})
    RECORDED.write_text(json.dumps({"recorded_with": recorded[0]["report"]["versions"], "cases": recorded},
                                   indent=1) + "\n")
    print(f"wrote {RECORDED.relative_to(ROOT)}")
    return 0 if all(r["report"]["verdict"] == r["expected"] for r in recorded) else 1


if __name__ == "__main__":
    raise SystemExit(main())
