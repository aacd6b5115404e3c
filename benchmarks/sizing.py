"""How many cores and GiB a class needs: each notebook's CPU-seconds and peak memory, measured, then sized for 30.

    python -m benchmarks.sizing                 # every notebook, one after another, each in a fresh kernel
    python -m benchmarks.sizing 10 11 --json sizing.json --learners 30

Each notebook runs top to bottom in a fresh kernel (nbclient, as tests/notebooks/test_notebooks.py runs them). The
kernel is started under a small reaper, this file run with ``--reap``: it makes itself the child subreaper
(``PR_SET_CHILD_SUBREAPER``), so every process the kernel starts (servers, nginx and its workers, redis-server, a
browser, and what they start) is reaped by the kernel or, when orphaned, by the reaper. When the kernel has ended,
``getrusage(RUSAGE_CHILDREN)`` of the reaper is the user+system CPU time of the whole tree, exited children
included, to the clock tick. The kernel's start (importing ipykernel) is part of it, as it is for a learner.
Memory is sampled every 0.1 s: the sum of the RSS of every process under the reaper (shared pages counted once
per process, so an upper bound), the sum of their PSS (shared pages split between the processes that share them:
what the tree adds to the host; both miss a process that lives less than 0.1 s), and the kernel's own RSS after
its last cell (what a notebook left open keeps). It also measures a fresh kernel's idle RSS and an idle
``jupyter lab`` server's.

Then it prints a table and sizes a class of ``--learners``:

(a) everyone at their own pace: each notebook's CPU spread over its nominal minutes (the README's table), so the
    average cores are learners x course CPU-s / course seconds; memory per learner is the server, the running
    notebook's peak (PSS), and the kernels of the two notebooks before it (still open: the hub recipe culls a kernel
    after 30 idle minutes, and notebooks last 10 to 15);
(b) everyone presses Run All on notebook N at the same moment: for each to finish in the time it took alone here,
    the host needs learners x CPU-s / wall-seconds cores; memory is learners x (server + N's peak + two open
    kernels), from the PSS peaks (the RSS peaks give an upper bound).

It prints figures and asserts nothing: timings belong here, not in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
MIB = 2**20
ROOT = Path(__file__).resolve().parent.parent


def reap(result: Path, command: list[str]) -> int:
    """Run ``command`` as the kernel; reap it and every orphan below; after each reap, write the children's rusage.

    SIGINT and SIGTERM reach the kernel from its manager through the process group (jupyter_client signals the
    group), so the reaper ignores them and gives the kernel the default dispositions back.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for signum in handled:
        signal.signal(signum, signal.SIG_IGN)
    kernel = os.posix_spawn(command[0], command, os.environ, setsigdef=handled)
    status = 0
    while True:
        try:
            pid, wait_status, _ = os.wait4(-1, 0)
        except ChildProcessError:
            break
        if pid == kernel:
            status = os.waitstatus_to_exitcode(wait_status)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        result.write_text(json.dumps({"cpu_s": usage.ru_utime + usage.ru_stime, "user_s": usage.ru_utime,
                                      "system_s": usage.ru_stime, "kernel_ended": pid == kernel or None}))
    return status


class TreeSampler:
    """Samples, every ``interval`` seconds, the summed RSS of every process below ``root`` (``root`` left out)."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        import psutil

        self.root = psutil.Process(root)
        self.interval = interval
        self.peak_bytes = 0
        self.peak_pss_bytes = 0
        self.peak_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total, pss, count = 0, 0, 0
            with contextlib.suppress(psutil.Error):
                for child in self.root.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        memory = child.memory_full_info()
                        total += memory.rss
                        pss += memory.pss
                        count += 1
            self.peak_bytes = max(self.peak_bytes, total)
            self.peak_pss_bytes = max(self.peak_pss_bytes, pss)
            self.peak_processes = max(self.peak_processes, count)
            self.samples += 1
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Measured:
    notebook: str
    nominal_minutes: int | None
    passed: bool
    failure: str | None
    wall_s: float
    cpu_s: float
    peak_tree_mib: float
    peak_tree_pss_mib: float
    peak_processes: int
    kernel_end_mib: float
    load_before: str
    load_after: str


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def nominal_minutes() -> dict[str, int]:
    """Each notebook's minutes from the README's table (its first number)."""
    found = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = re.match(r"\| \[`(\d\d_\w+)`\]\([^)]*\) \| (\d+)", line)
        if match:
            found[match[1]] = int(match[2])
    return found


@contextlib.contextmanager
def reaped_kernelspec(result: Path) -> Any:
    """A ``python3`` kernelspec, first on JUPYTER_PATH, whose argv runs the kernel under ``reap``."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    folder = Path(tempfile.mkdtemp(prefix="lab-sizing-"))
    kernel_dir = folder / "kernels" / "python3"
    kernel_dir.mkdir(parents=True)
    spec_json = spec.to_dict()
    spec_json["argv"] = [sys.executable, str(Path(__file__).resolve()), "--reap", str(result), "--",
                         sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (kernel_dir / "kernel.json").write_text(json.dumps(spec_json))
    saved = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(folder) + (os.pathsep + saved if saved else "")
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = saved
        shutil.rmtree(folder, ignore_errors=True)


def measure_notebook(path: Path, minutes: int | None, timeout: float) -> Measured:
    import nbformat
    import psutil
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from traitlets.config import Config

    from helpers.notebook_runner import TRANSPORT_ENCRYPTION, _failure

    result = Path(tempfile.mkstemp(prefix="lab-sizing-", suffix=".json")[1])
    notebook = nbformat.read(path, as_version=4)
    state: dict[str, Any] = {}
    with reaped_kernelspec(result):
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}},
                                config=Config({"KernelManager": {"transport_encryption": TRANSPORT_ENCRYPTION}}))

        def started(**_: object) -> None:
            reaper = client.km.provisioner.process.pid  # type: ignore[union-attr]
            state["sampler"] = TreeSampler(reaper)
            state["sampler"].start()
            state["kernel"] = psutil.Process(reaper).children()[0]
            state["start"] = time.monotonic()

        def executed(**_: object) -> None:
            with contextlib.suppress(psutil.Error):
                state["kernel_end"] = state["kernel"].memory_info().rss
            state["end"] = time.monotonic()

        client.on_notebook_start = started
        client.on_cell_executed = executed
        before = load()
        error: BaseException | None = None
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError) as raised:
            error = raised
        sampler: TreeSampler = state["sampler"]
        sampler.stop()
    usage = json.loads(result.read_text())
    result.unlink()
    failure = _failure(notebook, error)
    return Measured(path.stem, minutes, failure is None, str(failure) if failure else None,
                    round(state.get("end", state["start"]) - state["start"], 1), round(usage["cpu_s"], 1),
                    round(sampler.peak_bytes / MIB, 1), round(sampler.peak_pss_bytes / MIB, 1), sampler.peak_processes,
                    round(state.get("kernel_end", 0) / MIB, 1), before, load())


def idle_kernel_mib(settle: float = 3.0) -> float:
    """A fresh kernel's RSS once it has started and sat idle ``settle`` seconds."""
    import psutil
    from jupyter_client.manager import start_new_kernel

    from helpers.notebook_runner import TRANSPORT_ENCRYPTION

    manager, client = start_new_kernel(kernel_name="python3", transport_encryption=TRANSPORT_ENCRYPTION)
    try:
        time.sleep(settle)
        return round(psutil.Process(manager.provisioner.process.pid).memory_info().rss / MIB, 1)  # type: ignore[union-attr]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def idle_server_mib(settle: float = 5.0) -> float:
    """An idle ``jupyter lab`` server's RSS (no kernel, after one request for its page), on 127.0.0.1."""
    import psutil

    token = os.urandom(16).hex()
    folder = Path(tempfile.mkdtemp(prefix="lab-sizing-server-"))
    lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                            "--ServerApp.port=0", f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0",
                            f"--ServerApp.root_dir={ROOT}", *(["--allow-root"] if os.geteuid() == 0 else [])],
                           env={**os.environ, "JUPYTER_RUNTIME_DIR": str(folder)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            for info in folder.glob("jpserver-*.json"):
                with contextlib.suppress(ValueError, OSError):
                    url = json.loads(info.read_text())["url"]
            time.sleep(0.5)
        if url is None:
            raise RuntimeError("jupyter lab did not start within 120 s")
        with urllib.request.urlopen(f"{url}lab?token={token}", timeout=60) as page:
            page.read()
        time.sleep(settle)
        process = psutil.Process(lab.pid)
        return round(sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / MIB, 1)
    finally:
        lab.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            lab.wait(30)
        if lab.poll() is None:
            lab.kill()
        shutil.rmtree(folder, ignore_errors=True)


def sizing(rows: list[Measured], server_mib: float, kernel_mib: float, learners: int,
           cores: int = os.cpu_count() or 1) -> dict[str, Any]:
    """What ``learners`` need (see the module's docstring), and on ``cores``: how many can start a notebook at
    once and still finish in its time alone (a wave), and the least time for all of them at once."""
    course = [r for r in rows if r.nominal_minutes]
    course_cpu = sum(r.cpu_s for r in course)
    course_seconds = 60 * sum(r.nominal_minutes or 0 for r in course)
    open_kernels = 2 * statistics.median(r.kernel_end_mib for r in course) if course else 2 * kernel_mib
    peak = max((r.peak_tree_pss_mib for r in course), default=0.0)
    per_learner_mib = server_mib + peak + open_kernels
    at_once = {
        r.notebook: {"cores": round(learners * r.cpu_s / r.wall_s, 1) if r.wall_s else None,
                     "gib": round(learners * (server_mib + r.peak_tree_pss_mib + open_kernels) / 1024, 1),
                     "gib_rss_bound": round(learners * (server_mib + r.peak_tree_mib + open_kernels) / 1024, 1),
                     "per_wave_here": int(cores * r.wall_s / r.cpu_s) if r.cpu_s else None,
                     "all_at_once_here_s": round(learners * r.cpu_s / cores)}
        for r in rows
    }
    return {
        "learners": learners,
        "cores_here": cores,
        "course_cpu_s_per_learner": round(course_cpu, 1),
        "course_nominal_minutes": course_seconds // 60,
        "own_pace_cores": round(learners * course_cpu / course_seconds, 2) if course_seconds else None,
        "own_pace_mib_per_learner": round(per_learner_mib, 1),
        "own_pace_gib": round(learners * per_learner_mib / 1024, 1),
        "two_open_kernels_mib": round(open_kernels, 1),
        "all_kernels_left_open_mib_per_learner": round(server_mib + sum(r.kernel_end_mib for r in course), 1),
        "run_all_at_once": at_once,
    }


def print_tables(rows: list[Measured], server_mib: float, kernel_mib: float, sized: dict[str, Any]) -> None:
    print("\n| notebook | nominal min | passed | wall s (alone) | CPU-s (kernel tree) | peak MiB (tree RSS) | "
          "peak MiB (tree PSS) | processes | kernel RSS after its last cell, MiB | load before -> after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.notebook} | {r.nominal_minutes or '-'} | {'yes' if r.passed else 'NO: ' + str(r.failure)} | "
              f"{r.wall_s} | {r.cpu_s} | {r.peak_tree_mib} | {r.peak_tree_pss_mib} | {r.peak_processes} | "
              f"{r.kernel_end_mib} | {r.load_before} -> {r.load_after} |")
    n = sized["learners"]
    print(f"\nsingle-user server: {server_mib} MiB; fresh idle kernel: {kernel_mib} MiB")
    print(f"per learner, the course ({sized['course_nominal_minutes']} nominal minutes): "
          f"{sized['course_cpu_s_per_learner']} CPU-s; all its kernels left open: "
          f"{sized['all_kernels_left_open_mib_per_learner']} MiB with the server")
    print(f"(a) {n} learners at their own pace: {sized['own_pace_cores']} cores on average, "
          f"{sized['own_pace_gib']} GiB ({sized['own_pace_mib_per_learner']} MiB each: server + largest peak PSS + "
          f"two open kernels {sized['two_open_kernels_mib']} MiB)")
    print(f"(b) {n} learners press Run All on the same notebook at once, each to finish in its time alone here:")
    here = sized["cores_here"]
    print(f"\n| notebook | cores | GiB (PSS) | GiB (RSS, upper bound) | learners per wave on {here} cores | "
          f"all {n} at once on {here} cores: at least, s |\n|---|---|---|---|---|---|")
    for name, need in sized["run_all_at_once"].items():
        print(f"| {name} | {need['cores']} | {need['gib']} | {need['gib_rss_bound']} | {need['per_wave_here']} | "
              f"{need['all_at_once_here_s']} |")


def measure_all(args: argparse.Namespace) -> tuple[list[Measured], float, float]:
    from helpers.notebook_runner import notebook_path, notebook_paths

    paths = [notebook_path(name) for name in args.notebooks] if args.notebooks else notebook_paths()
    minutes = nominal_minutes()
    print(f"{os.cpu_count()} CPUs; load average {load()}; Python {sys.version.split()[0]}", flush=True)
    server_mib = idle_server_mib()
    kernel_mib = idle_kernel_mib()
    print(f"idle jupyter lab server {server_mib} MiB, idle kernel {kernel_mib} MiB", flush=True)
    rows = []
    for path in paths:
        row = measure_notebook(path, minutes.get(path.stem), args.timeout)
        print(json.dumps(asdict(row)), flush=True)
        rows.append(row)
    return rows, server_mib, kernel_mib


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--reap"]:
        return reap(Path(argv[1]), argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="e.g. 04 10 (default: every notebook)")
    parser.add_argument("--learners", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=300, help="per cell, seconds")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--from-json", nargs="+", metavar="PATH",
                        help="size from earlier runs' --json files instead of running the notebooks; a later "
                             "file's row for a notebook replaces an earlier file's")
    parser.add_argument("--server-mib", type=float,
                        help="size with this single-user server RSS (e.g. jupyterhub-singleuser's, which "
                             "benchmarks/hub_run.py prints) instead of the idle jupyter lab measured")
    args = parser.parse_args(argv)

    if args.from_json:
        saved = [json.loads(Path(path).read_text()) for path in args.from_json]
        by_name = {row["notebook"]: Measured(**row) for run in saved for row in run["rows"]}
        rows = [by_name[name] for name in sorted(by_name)]
        server_mib, kernel_mib = saved[0]["server_mib"], saved[0]["kernel_mib"]
    else:
        rows, server_mib, kernel_mib = measure_all(args)
    server_mib = args.server_mib or server_mib
    sized = sizing(rows, server_mib, kernel_mib, args.learners)
    print_tables(rows, server_mib, kernel_mib, sized)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                               "server_mib": server_mib, "kernel_mib": kernel_mib,
                                               "rows": [asdict(r) for r in rows], "sizing": sized}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
