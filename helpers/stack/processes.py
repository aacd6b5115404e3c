"""Child processes that cannot outlive the lab: the one way the stack starts anything.

Three guarantees, one for each way a lesson ends:

* **Stopped when asked** (a re-run, ``stop()``, the end of a ``with`` block, a KeyboardInterrupt
  during start-up): the stop signal, then SIGKILL to the child's whole process group after a
  timeout, so an nginx master's workers go with it.
* **Not hit by the kernel's interrupt**: each child runs in a session of its own. Jupyter sends
  SIGINT to the kernel's process group on "Interrupt"; the lab, not the signal, decides when a
  component stops, so its state never silently disagrees with what is running.
* **Gone when the kernel dies**, even by SIGKILL: each child asks Linux for a signal when its
  parent dies (``prctl(PR_SET_PDEATHSIG)``). Linux ties that signal to the *thread* that forked
  the child, so every child is forked from one long-lived spawner thread, never from a thread
  that may end first (a server's loop thread, say).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from helpers.errors import LabError
from ws_leakcheck.servers import HOST as HOST

PR_SET_PDEATHSIG = 1
TEMP_PREFIX = "lab-stack-"


@functools.cache
def _prctl() -> Callable[..., int]:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl


@functools.cache
def _spawner() -> concurrent.futures.ThreadPoolExecutor:
    """The thread every child is forked from: it lives as long as the process (see the module's docstring)."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lab-stack-spawner")


def _die_with(parent: int, death_signal: int) -> Callable[[], None]:
    prctl = _prctl()

    def in_child() -> None:  # runs between fork and exec: no allocation-heavy work here
        if prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0) != 0 or os.getppid() != parent:
            os._exit(70)  # the parent is already gone: never start an orphan

    return in_child


class Child:
    """One subprocess owned by the lab, with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log: Path,
        stop_signal: int = signal.SIGTERM,
        death_signal: int = signal.SIGKILL,
        env: dict[str, str] | None = None,
        cwd: Path | str | None = None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.stop_signal = stop_signal
        self.returncode: int | None = None

        def start() -> subprocess.Popen[bytes]:
            with open(log, "ab") as output:
                return subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                    env=env, cwd=cwd, pass_fds=tuple(pass_fds), start_new_session=True,
                    preexec_fn=_die_with(os.getpid(), death_signal),
                )

        try:
            self.process = _spawner().submit(start).result()
        except FileNotFoundError:
            raise LabError(f"Cannot start {name}: {self.argv[0]} was not found.") from None
        self.pid = self.process.pid
        _register(self)

    def running(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        """Send one signal to the child itself (not its group), e.g. SIGINT for a graceful shutdown."""
        if self.running():
            self.process.send_signal(signum)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if the child still runs after ``timeout`` seconds."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 3.0) -> int:
        """Stop with the stop signal, then SIGKILL the whole process group; return the exit code."""
        if self.running():
            self.process.send_signal(self.stop_signal)
            if self.wait(timeout) is None:
                _kill_group(self.pid)
        self.returncode = self.process.wait()
        _kill_group(self.pid)  # whatever the child left in its session (an nginx worker, say)
        _unregister(self)
        return self.returncode

    def __repr__(self) -> str:
        return f"<Child {self.name} pid={self.pid} {'running' if self.running() else 'exited'}>"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return


_children: dict[int, Child] = {}


def _register(child: Child) -> None:
    _children[child.pid] = child


def _unregister(child: Child) -> None:
    _children.pop(child.pid, None)


class OwnedProcess:
    """A component the lab runs as a ``Child`` with a temporary folder of its own (``dir``).

    Stop it with ``stop()`` or a ``with`` block; subclasses set ``child`` and ``dir`` when they start.
    """

    child: Child
    dir: Path

    def running(self) -> bool:
        return self.child.running()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the process (its stop signal, then SIGKILL after ``timeout`` seconds) and remove its files."""
        self.child.stop(timeout)
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def running_children() -> list[Child]:
    """Every child the lab started and has not stopped yet."""
    return [child for child in _children.values() if child.running()]


def stop_children() -> None:
    """Stop every child the lab started (the last resort: components stop their own first)."""
    for child in list(_children.values()):
        child.stop(timeout=1.0)


def free_port() -> int:
    """A loopback port that was free a moment ago: for programs that cannot bind port 0 themselves.

    Another process may take it before the program binds it; callers retry on a bind failure.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def bound_socket() -> socket.socket:
    """A listening loopback socket on a free port, to hand to a server process (``--fd``): no race at all."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


SOCKET_PATH_ROOM = 60
"""Characters a component's folder name and its Unix socket's name add to the run folder's path
(``lab-stack-<pid>-worker-hypercorn-XXXXXXXX/report.sock``); Linux allows 107 in all."""


def _private_folder(path: Path) -> Path | None:
    """``path``, made if missing, if it is this user's alone (mode 0700, owned by us, not a link); else None."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        return None
    if stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)
    return path


def runtime_dir() -> Path:
    """The folder only this user can enter where the stack keeps its processes' files (sockets,
    configuration with secrets, logs): ``$XDG_RUNTIME_DIR/ws-leak-lab`` when the system gives one,
    else ``run/`` in the lab's cache (``~/.cache/ws-leak-lab/run``), else, when that path is too long
    for a Unix socket, ``ws-leak-lab-<uid>`` in the system's temporary folder. Never a folder that
    other users may write into: a dead kernel's files stay where only their owner finds them."""
    from helpers.timemachine import cache_dir

    candidates = [cache_dir() / "run", Path(tempfile.gettempdir()) / f"ws-leak-lab-{os.geteuid()}"]
    if os.environ.get("XDG_RUNTIME_DIR"):
        candidates.insert(0, Path(os.environ["XDG_RUNTIME_DIR"]) / "ws-leak-lab")
    for candidate in candidates:
        if len(str(candidate)) + SOCKET_PATH_ROOM <= 107 and (folder := _private_folder(candidate)) is not None:
            return folder
    raise LabError(f"No folder of this user's alone for the lab's processes: {', '.join(map(str, candidates))} "
                   "are taken by another user, not folders, or too long a path for a Unix socket; set LAB_CACHE to "
                   "a short folder of yours.")


def temp_dir(component: str) -> Path:
    """A private directory for one component's files, named after the kernel's pid (see ``remove_stale_dirs``)."""
    base = runtime_dir()
    remove_stale_dirs(base)
    return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-{component}-", dir=base))


def remove_stale_dirs(base: Path | None = None) -> list[Path]:
    """Remove the folders of lab processes whose kernel is gone (a killed kernel cannot clean up), say so in
    one line, and return them."""
    base = runtime_dir() if base is None else base
    stale: dict[int, list[Path]] = {}
    for path in base.glob(f"{TEMP_PREFIX}*-*-*"):
        owner = path.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not _pid_exists(int(owner)):
            stale.setdefault(int(owner), []).append(path)
    removed = [path for paths in stale.values() for path in paths]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    if removed:
        kernels = ", ".join(str(pid) for pid in sorted(stale))
        print(f"Removed {len(removed)} folder(s) left in {base} by a kernel that ended without stopping its "
              f"processes (pid {kernels}).", flush=True)
    return removed


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for(condition: Callable[[], bool], child: Child, timeout: float, what: str) -> bool:
    """Poll ``condition`` until it holds; False if the child exited first. A LabError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if not child.running():
            return False
        if time.monotonic() > deadline:
            child.stop(timeout=1.0)
            raise LabError(f"{what} did not become ready within {timeout:.0f} s; its log is {child.log}.")
        time.sleep(0.01)
