"""ws-leakcheck beside pyleak 0.2.0 on the lab's own zoo of endpoints: both scores, and the time per endpoint.

    .venv/bin/python -m benchmarks.leakcheck_vs_pyleak          # about 10 minutes; prints a Markdown table

pyleak runs in a throwaway environment (the lab's pins of fastapi, starlette, uvicorn and websockets, plus
pyleak==0.2.0, built once into the lab's cache, like the time machine's stacks), through
benchmarks/pyleak_harness.py: its most favourable honest harness. ws-leakcheck runs as a team runs it, with its
defaults (5 clients per way, all four ways, the rounds) and the endpoint's script. Each endpoint's ground truth is
the lab's: the verdict tests/leakcheck/test_lesson_endpoints.py and the other leakcheck tests assert. The score is
leak vs not leak (pyleak has no "noisy"); a harness that hangs (a frozen loop) is killed after HANG seconds and
scored as a miss. Ends printing the scores per kind of leak, and the medians.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PYLEAK_PINS = ("fastapi==0.165.0", "starlette==1.10.0", "uvicorn==0.54.0", "websockets==17.4", "pyleak==0.2.0")
HANG = 60.0
PROJECT = str(ROOT / "tests" / "support" / "zoo_project")

# (kind, app, path, client script (send), truth: leak / noisy / clean)
ZOO: list[tuple[str, str, str, tuple[str, ...], str]] = [
    ("handler never ends", "helpers.apps.leaks:app", "/ws/prices", (), "leak"),
    ("per-visitor state", "helpers.apps.leaks:app", "/ws/alerts", (), "leak"),  # its tasks, kept in a set
    ("handler never ends", "helpers.apps.leaks:app", "/ws/stubborn", (), "leak"),
    ("handler never ends", "tests.support.zoo:app", "/event-waiter", (), "leak"),
    ("handler never ends", "tests.support.zoo:app", "/sleeper", (), "leak"),
    ("handler never ends", "tests.support.zoo_shapes:timing", "/poller-forever", (), "leak"),
    ("handler never ends", "chat.main:app", "/ws/secure-feed?token=secret-token", ('{"type": "hello"}',), "leak"),
    ("orphaned task", "tests.support.zoo:app", "/ensure-future-orphan", (), "leak"),
    ("per-visitor state", "helpers.apps.leaks:app", "/ws/chat", (), "leak"),
    ("per-visitor state", "tests.support.zoo:app", "/dict-registry", (), "leak"),
    ("per-visitor state", "tests.support.zoo_shapes:timing", "/remember-visitors", (), "leak"),
    ("frozen loop", "tests.support.zoo:app", "/retry-receive", (), "leak"),
    ("frozen loop", "tests.support.zoo_shapes:timing", "/spin", (), "leak"),
    ("noisy", "helpers.apps.seed:app", "/ws/metrics", (), "noisy"),
    ("noisy", "helpers.apps.leaks:app", "/ws/room/1", (), "noisy"),
    ("noisy", "tests.support.zoo:app", "/receive-no-try", (), "noisy"),
    ("noisy", "tests.support.zoo:app", "/send-no-try", (), "noisy"),
    ("noisy", "chat.main:app", "/ws/chat", (), "noisy"),
    ("clean, slow", "helpers.apps.leaks:app", "/ws/heartbeat", (), "clean"),
    ("clean, slow", "tests.support.zoo_shapes:timing", "/poller-notices", (), "clean"),
    ("clean, slow", "tests.support.zoo_shapes:timing", "/sleeps-then-ends", (), "clean"),
    ("clean", "helpers.apps.seed:app", "/ws/metrics-fixed", (), "clean"),
    ("clean", "helpers.apps.fixed:app", "/ws/prices", (), "clean"),
    ("clean", "helpers.apps.fixed:app", "/ws/heartbeat", (), "clean"),
    ("clean", "helpers.apps.fixed:app", "/ws/alerts", (), "clean"),
    ("clean", "helpers.apps.fixed:app", "/ws/chat", (), "clean"),
    ("clean", "helpers.apps.fixed:app", "/ws/room/1", (), "clean"),
    ("clean", "helpers.apps.fixed:app", "/ws/stubborn", (), "clean"),
    ("clean", "tests.support.zoo:app", "/echo", (), "clean"),
    ("clean", "tests.support.zoo:app", "/receive-with-except", (), "clean"),
    ("clean", "tests.support.zoo:app", "/sender-with-watcher", (), "clean"),
    ("clean", "tests.support.zoo_shapes:timing", "/cache-once", (), "clean"),
    ("clean", "chat.main:app", "/ws/notifications-fixed", (), "clean"),
]


def _pyleak_python() -> Path:
    from tests.support import zoo_envs

    return zoo_envs._environment("pyleak-0.2.0", PYLEAK_PINS)


def _leakcheck(app: str, path: str, send: tuple[str, ...]) -> tuple[str, float]:
    """The command line, as a team runs it (its process of its own; a frozen loop dies with it)."""
    args = [sys.executable, "-m", "ws_leakcheck", app, path, "--json"]
    for text in send:
        args += ["--send", text]
    if app.startswith("chat."):
        args += ["--app-dir", PROJECT]
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)
    seconds = time.monotonic() - started
    verdict = json.loads(done.stdout)["verdict"] if done.stdout.strip() else f"exit {done.returncode}"
    return verdict, seconds


def _pyleak(python: Path, app: str, path: str, send: tuple[str, ...]) -> tuple[str, float]:
    args = [str(python), str(ROOT / "benchmarks" / "pyleak_harness.py"), app, path]
    for text in send:
        args += ["--send", text]
    if app.startswith("chat."):
        args += ["--app-dir", PROJECT]
    started = time.monotonic()
    try:
        done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=HANG,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    except subprocess.TimeoutExpired:
        return "hung", time.monotonic() - started
    seconds = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return f"error: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}", seconds
    return ("leak" if json.loads(lines[-1])["leak"] else "not leak"), seconds


def main() -> int:
    python = _pyleak_python()
    rows = []
    for kind, app, path, send, truth in ZOO:
        ours, ours_s = _leakcheck(app, path, send)
        theirs, theirs_s = _pyleak(python, app, path, send)
        rows.append((kind, app, path, truth, ours, ours_s, theirs, theirs_s))
        print(f"{kind:<20} {app.split(':')[0]}:{path:<38} truth {truth:<6} ws-leakcheck {ours:<9} {ours_s:5.1f} s   "
              f"pyleak {theirs:<9} {theirs_s:5.1f} s", flush=True)
    print()
    print("| kind of endpoint | endpoints | ws-leakcheck right (leak vs not) | pyleak 0.2.0 right |")
    print("|---|---|---|---|")
    kinds = list(dict.fromkeys(r[0] for r in rows))
    total_ours = total_theirs = 0
    for kind in kinds:
        group = [r for r in rows if r[0] == kind]
        ours = sum((r[4] == "leak") == (r[3] == "leak") for r in group)
        theirs = sum((r[6] == "leak") == (r[3] == "leak") for r in group)
        total_ours, total_theirs = total_ours + ours, total_theirs + theirs
        print(f"| {kind} | {len(group)} | {ours} | {theirs} |")
    print(f"| **all** | {len(rows)} | {total_ours} | {total_theirs} |")
    three_way = sum(r[4] == r[3] for r in rows)
    print(f"\nws-leakcheck's own three-way verdict (leak / noisy / clean) right on {three_way} of {len(rows)}.")
    ours_times, theirs_times = [r[5] for r in rows], [r[7] for r in rows]
    print(f"seconds per endpoint, median / max: ws-leakcheck {statistics.median(ours_times):.1f} / "
          f"{max(ours_times):.1f}; pyleak {statistics.median(theirs_times):.1f} / {max(theirs_times):.1f}")
    slow = [(r[2], r[5]) for r in rows if r[5] > 15]
    if slow:
        print("ws-leakcheck over 15 s: " + ", ".join(f"{path} ({s:.1f} s)" for path, s in slow))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
