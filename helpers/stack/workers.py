"""Server processes behind the proxy: each serves an importable app and reports what lives in it.

A worker is one uvicorn or hypercorn process started with the server's own command line, as
in a deploy (``python -m uvicorn``, ``python -m hypercorn -w 0``: one process, no supervisor).
The lab binds the loopback socket and hands it over (``--fd`` / ``--bind fd://``), so there is
no port to race for. Inside, the app runs wrapped by ``helpers.stack.reporter``, which answers
on a Unix socket with the worker's live handlers, sends and close codes.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, Literal, get_args

from helpers.errors import LabError
from helpers.stack.processes import HOST, Child, OwnedProcess, bound_socket, temp_dir, wait_for
from helpers.stack.reporter import read_report

Server = Literal["uvicorn", "hypercorn"]
WORKER_SERVERS: tuple[Server, ...] = get_args(Server)
"""The servers the production stack runs as worker processes behind nginx (notebooks 09-11)."""
START_TIMEOUT = 30.0


def _command(server: str, fd: int, *, ping_interval: float | None, ping_timeout: float | None,
              graceful_timeout: float | None, lifespan: bool, trace: bool = False) -> list[str]:
    python = [sys.executable, "-m", server]
    if server == "uvicorn":
        argv = [*python, "--factory", "helpers.stack.reporter:from_environment", "--fd", str(fd),
                "--lifespan", "on" if lifespan else "off", "--no-access-log",
                "--no-proxy-headers"]  # the scope's client is the TCP peer, which ws_leakcheck.owner_only checks
        argv += ["--log-level", "trace"] if trace else []
        argv += ["--ws-ping-interval", str(ping_interval or 0)] if ping_interval is not None else []
        argv += ["--ws-ping-timeout", str(ping_timeout)] if ping_timeout is not None else []
        if graceful_timeout is not None:  # whole seconds only (checked by Worker)
            argv += ["--timeout-graceful-shutdown", str(int(graceful_timeout))]
        return argv
    argv = [*python, "-w", "0", "--bind", f"fd://{fd}"]
    argv += ["--websocket-ping-interval", str(ping_interval)] if ping_interval is not None else []
    argv += ["--graceful-timeout", str(graceful_timeout)] if graceful_timeout is not None else []
    return [*argv, "helpers.stack.reporter:from_environment()"]


class Worker(OwnedProcess):
    """One server process serving ``app`` ("module:attribute") on a loopback port.

    ``ping_interval``/``ping_timeout``: the server's WebSocket keepalive (None: the server's
    default; uvicorn pings every 20 s by default, hypercorn not at all and has no timeout
    setting). ``graceful_timeout``: uvicorn's ``--timeout-graceful-shutdown`` (default: wait
    for ever) or hypercorn's ``--graceful-timeout`` (default 3 s). ``watch``: function names
    whose live coroutines the worker counts. ``environment``: extra variables for the app.
    ``trace``: uvicorn's ``--log-level trace`` (it logs, among others, each keepalive ping timeout).
    ``wait=False`` returns once the process is started; call ``wait_ready()`` before using it
    (the stack starts its workers side by side this way).
    """

    def __init__(
        self,
        app: str,
        server: Server = "uvicorn",
        *,
        watch: Sequence[str] = (),
        ping_interval: float | None = None,
        ping_timeout: float | None = None,
        graceful_timeout: float | None = None,
        lifespan: bool = True,
        trace: bool = False,
        name: str | None = None,
        environment: dict[str, str] | None = None,
        wait: bool = True,
    ) -> None:
        if server not in WORKER_SERVERS:
            raise LabError(f"Unknown worker server {server!r}; choose one of {', '.join(WORKER_SERVERS)}.")
        if importlib.util.find_spec(server) is None:
            raise LabError(f"A {server} worker needs the {server!r} package, which is not installed here "
                           f"(`pip install {server}`).")
        if not isinstance(app, str) or ":" not in app:
            raise LabError(f"A worker imports its app: pass 'package.module:attribute', not {app!r}.")
        if server == "hypercorn" and ping_timeout is not None:
            raise LabError("hypercorn has no ping timeout setting; pass ping_timeout=None for a hypercorn worker.")
        if graceful_timeout is not None and (
            graceful_timeout < 0 or (server == "uvicorn" and graceful_timeout != int(graceful_timeout))
        ):
            raise LabError("graceful_timeout must be a non-negative number of seconds (whole seconds for uvicorn), "
                           f"not {graceful_timeout!r}.")
        self.app = app
        self.server = server
        self.name = name or server
        self.dir = temp_dir(f"worker-{server}")
        self.report_socket = self.dir / "report.sock"
        sock = bound_socket()
        self.port: int = sock.getsockname()[1]
        env = {
            **os.environ,
            "LAB_APP": app,
            "LAB_REPORT_SOCKET": str(self.report_socket),
            "LAB_WATCH": ",".join(watch),
            "PYTHONPATH": os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH", "")) if p),
            "PYTHONUNBUFFERED": "1",
            **(environment or {}),
        }
        command = _command(server, sock.fileno(), ping_interval=ping_interval, ping_timeout=ping_timeout,
                           graceful_timeout=graceful_timeout, lifespan=lifespan, trace=trace)
        self._sock = sock
        try:
            self.child = Child(f"{server} worker", command, log=self.dir / "server.log",
                               stop_signal=signal.SIGTERM, env=env, cwd=os.getcwd(), pass_fds=(sock.fileno(),))
        except BaseException:
            self._cleanup()
            raise
        finally:
            sock.close()  # the worker has its copy; once it exits, connecting is refused, not queued
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Return once the server answers HTTP on its port; a LabError if it exits first."""
        try:
            serving = wait_for(self._serving, self.child, START_TIMEOUT, f"The {self.server} worker")
        except LabError:
            self._cleanup()
            raise
        if not serving:
            output = self.child.output().strip().splitlines()
            self.stop()
            raise LabError(f"The {self.server} worker for {self.app!r} exited during start-up: "
                           f"{(output or ['no output'])[-1].rstrip('.')}.")

    def _serving(self) -> bool:
        if not self.report_socket.exists():
            return False
        connection = http.client.HTTPConnection(HOST, self.port, timeout=2.0)
        try:
            connection.request("GET", "/__lab_worker_ready")
            connection.getresponse().read()
            return True
        except OSError:
            return False
        finally:
            connection.close()

    def report(self) -> dict[str, Any]:
        """What the worker says is alive in it (see ``helpers.stack.reporter``)."""
        return {"worker": self.name, "server": self.server, "port": self.port, **read_report(str(self.report_socket))}

    def handlers(self) -> int:
        return int(self.report()["handlers"])

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://{HOST}:{self.port}{path}"

    @property
    def pid(self) -> int:
        return self.child.pid

    def shutdown(self, signum: int = signal.SIGINT, timeout: float = 10.0) -> float | None:
        """Ask for a graceful shutdown (Ctrl-C by default); seconds until the process exited, or None."""
        started = time.monotonic()
        self.child.signal(signum)
        code = self.child.wait(timeout)
        return None if code is None else time.monotonic() - started

    def output(self) -> str:
        return self.child.output()

    def _cleanup(self) -> None:
        self._sock.close()
        super()._cleanup()

    def __repr__(self) -> str:
        return (f"<Worker {self.name} {self.app} on {HOST}:{self.port} pid={self.child.pid} "
                f"{'running' if self.running() else 'stopped'}>")
