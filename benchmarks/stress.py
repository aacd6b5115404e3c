"""Run notebooks headless as a busy classroom hub or Binder node would, and report what fails.

    .venv/bin/python -m benchmarks.stress 03 04 04                  (from the repository's root)
    .venv/bin/python -m benchmarks.stress 03 04 04 --rounds 3 --hogs 2 --cpu 1 --memory-gb 2

Each round starts every named notebook at once, each in a fresh kernel. Every kernel is pinned to
one CPU (all its threads, so the threads it starts later too) and capped at ``--memory-gb`` with the
processes it starts, by a memory cgroup as a 2 GB Binder pod is (as root on cgroup v1; elsewhere the kernel's
address space, ``RLIMIT_AS``, which Chromium cannot start under); ``--hogs`` processes spin on that same CPU for
the whole round. The script prints, per notebook: the runs that passed, the failures (cell, first
line, the error and the line that raised), and the smallest margin left on any timing assert.

A timing margin comes from what the notebook prints: a cell that asserts a time prints it as
``1.23 s (limit 2.30 s)`` or ``1.23 s (at least 1.00 s)`` (``helpers.notebook_runner.TIMING_LINE``);
the margin is the fraction of the limit left unused. A script that prints, not a test: a round of
three notebooks takes a minute or two, so keep the rounds few on a shared machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from helpers.notebook_runner import Execution, execute, notebook_path

HOG = "while True: pass"


MEMORY_CGROUPS = Path("/sys/fs/cgroup/memory")
"""cgroup v1's memory controller: a limit on what the kernel's processes use, as a Binder or Kubernetes pod has."""


def memory_cgroup(memory_bytes: int) -> Path | None:
    """A memory cgroup capped at ``memory_bytes``, where this process may make one (root, cgroup v1), else None."""
    group = MEMORY_CGROUPS / f"ws-lab-stress-{os.getpid()}-{time.monotonic_ns()}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(memory_bytes))
    except OSError:
        return None
    return group


def pin_and_cap(cpu: int, memory_bytes: int) -> Callable[[int], None]:
    """A hook for a started kernel: every thread of the process on ``cpu``, and the kernel with every process it
    starts later (servers, Chromium) capped at ``memory_bytes`` together, by a memory cgroup as in a pod. Where no
    cgroup can be made, the kernel's own address space is capped instead (RLIMIT_AS), which is harsher: Chromium
    reserves far more address space than it uses and cannot start under it."""

    def apply(pid: int) -> None:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(tid), {cpu})
        group = memory_cgroup(memory_bytes)
        if group is not None:
            (group / "cgroup.procs").write_text(str(pid))
            CGROUPS.append(group)
        else:
            resource.prlimit(pid, resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    return apply


CGROUPS: list[Path] = []


def remove_cgroups() -> None:
    """Remove the round's cgroups once their processes have exited (a cgroup with processes cannot be removed)."""
    for group in CGROUPS:
        with contextlib.suppress(OSError):
            group.rmdir()
    CGROUPS.clear()


def start_hogs(n: int, cpu: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", HOG], preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
            for _ in range(n)]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.kill()
    for process in processes:
        process.wait(10)


def one_round(paths: list[Path], cpu: int, hogs: int, memory_bytes: int) -> list[Execution]:
    hook = pin_and_cap(cpu, memory_bytes)
    spinning = start_hogs(hogs, cpu)
    try:
        with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
            return list(pool.map(lambda p: execute(p, timeout=300, on_kernel_started=hook), paths))
    finally:
        stop(spinning)
        remove_cgroups()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", help="notebook names or numbers, repeated to run several copies")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    parser.add_argument("--memory-gb", type=float, default=2.0)
    args = parser.parse_args(argv)
    paths = [notebook_path(name) for name in args.notebooks]
    memory = int(args.memory_gb * 1024**3)
    print(f"{len(paths)} kernels at once on CPU {args.cpu} with {args.hogs} hogs, {args.memory_gb:g} GB each, "
          f"{args.rounds} round(s)", flush=True)
    by_notebook: dict[str, list[Execution]] = defaultdict(list)
    for number in range(1, args.rounds + 1):
        for run in one_round(paths, args.cpu, args.hogs, memory):
            by_notebook[run.path.stem].append(run)
            verdict = "passed" if run.passed else f"FAILED at {run.failure}"
            print(f"round {number}: {run.path.stem:<16} {run.seconds:6.1f} s  {verdict}", flush=True)
    print(f"\n{'notebook':<18}{'runs':>5}{'passed':>8}{'failed':>8}  {'smallest margin':<28}slowest")
    failures = 0
    for stem, runs in by_notebook.items():
        passed = sum(r.passed for r in runs)
        failures += len(runs) - passed
        margins = [m for r in runs for m in r.margins]
        smallest = min(margins, key=lambda m: m.spare, default=None)
        margin = (f"{smallest.spare:.0%} ({smallest.value:.2f} s, {smallest.kind} {smallest.limit:.2f} s)"
                  if smallest else "no timing assert")
        print(f"{stem:<18}{len(runs):>5}{passed:>8}{len(runs) - passed:>8}  {margin:<28}"
              f"{max(r.seconds for r in runs):.1f} s")
        for run in runs:
            if run.failure:
                print(f"    {run.failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
