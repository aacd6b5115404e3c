"""daphne beside the kernel: a subprocess serving the app, asked for its counts over a pipe.

daphne runs on Twisted's reactor, which takes over a process of its own, so the lab starts it
in a subprocess (``helpers.servers.daphne_agent``) on a socket the kernel bound (127.0.0.1,
port 0, read back here). The subprocess imports the app by its path (``"module:attribute"``):
it is the same code, but another copy of the module, so module-level state (a registry of
subscribers, a queue) is not shared with the kernel. Counts are honest all the same: the
agent walks the tasks of daphne's own asyncio loop, in its own process, when asked.

The subprocess exits when its stdin closes, so it never outlives the kernel, even one
killed with SIGKILL.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import IO, Any, ClassVar

import psutil

from helpers.errors import LabError
from helpers.routes import ASGIApp
from helpers.serverlog import ServerLog, stand_in
from helpers.servers.base import LabServer, RemoteTask, StopReport, bind, seconds_or_default
from ws_leakcheck import awaitchain, wire

ANSWER_TIMEOUT = 5.0
START_TIMEOUT = 30.0
"""A fresh interpreter importing Twisted, daphne and the app: about 1-5 s on a loaded machine."""


def app_path(app: ASGIApp | str, loaded: ASGIApp) -> str:
    """``"module:attribute"`` for an app the subprocess can import, or LabError saying why not."""
    if isinstance(app, str):
        return app
    found: list[str] = []
    for name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if not namespace:
            continue
        if namespace.get("__name__") in ("__main__", "__mp_main__"):
            name = "__main__"  # the notebook's or script's own namespace, whatever its key
        for attribute, value in list(namespace.items()):
            if value is loaded:
                found.append(f"{name}:{attribute}")
    importable = [path for path in found if not path.startswith("__main__:")]
    if importable:
        return min(importable, key=len)
    where = "in this notebook (or script) itself" if found else "in no module"
    raise LabError(
        f"daphne runs in a subprocess, which must import the app, but this app is defined {where}: "
        "put it in a module and pass serve('package.module:app', server='daphne')."
    )


class DaphneServer(LabServer):
    """daphne in a subprocess of the kernel.

    Pings: daphne's ``--ping-interval``/``--ping-timeout`` (its defaults: 20 s and 30 s); daphne
    always pings, so None is refused. ``application_close_timeout`` (daphne's default: 10 s): how
    long daphne lets a handler run after its client left before cancelling it. daphne 4.2 sends
    no ``spec_version`` in ``scope["asgi"]``. ``loop`` and ``run_in_loop`` do not exist here: the
    app's loop is in the subprocess.
    """

    name = "daphne"
    distribution = "daphne"
    keepalive_defaults: ClassVar[dict[str, float | None]] = {"ping_interval": 20.0, "ping_timeout": 30.0}
    default_application_close_timeout: ClassVar[float] = 10.0

    @classmethod
    def start(cls, source: ASGIApp | str, loaded: ASGIApp, **settings: Any) -> LabServer:
        return cls(source, loaded, **settings)  # the subprocess imports the app: it needs its name

    def __init__(
        self,
        app: ASGIApp | str,
        loaded: ASGIApp,
        *,
        ping_interval: float | None,
        ping_timeout: float | None,
        shutdown_timeout: float,
        port: int,
        lifespan: bool,
        application_close_timeout: float | None,
    ) -> None:
        self.stop_report = None
        if lifespan:
            raise LabError("daphne does not run the ASGI lifespan; pass lifespan=False (the default).")
        if ping_interval is None or ping_timeout is None:
            raise LabError("daphne always sends pings, so it cannot turn them off: give ping_interval and "
                           "ping_timeout in seconds.")
        self.app = loaded
        self.app_path = app_path(app, loaded)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.shutdown_timeout = shutdown_timeout
        self.application_close_timeout = (
            self.default_application_close_timeout if application_close_timeout is None
            else seconds_or_default("application_close_timeout", application_close_timeout, None) or 0.0
        )
        self.log = ServerLog(None, ())
        self._stderr: deque[str] = deque(maxlen=50)
        self._pending: dict[int, concurrent.futures.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._write = threading.Lock()
        sock = bind(port)
        self.port = sock.getsockname()[1]
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "helpers.servers.daphne_agent", self.app_path, "--fd", str(sock.fileno()),
                 "--ping-interval", str(ping_interval), "--ping-timeout", str(ping_timeout),
                 "--application-close-timeout", str(self.application_close_timeout)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                pass_fds=[sock.fileno()], env={**os.environ, "PYTHONPATH": os.pathsep.join(p or "." for p in sys.path)},
            )
        finally:
            sock.close()  # the subprocess holds the listening socket now
        self._readers = [
            threading.Thread(target=self._read_stdout, args=(self.process.stdout,), name="lab-daphne-out", daemon=True),
            threading.Thread(target=self._read_stderr, args=(self.process.stderr,), name="lab-daphne-err", daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        try:
            self._wait_started()
            self.baseline_tasks = len(self._state()["tasks"])
        except BaseException:
            self._kill()
            self.stop_report = StopReport(0.0, 0, 0)
            raise

    # The pipe.

    def _read_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            message = wire.decode(line)
            if "ready" in message:
                self._ready.set_result(int(message["ready"]))
            elif "log" in message:
                self.log.add(_record(message["log"]))
            elif "id" in message:
                future = self._pending.pop(message["id"], None)
                if future is not None:
                    future.set_result(message)
        if not self._ready.done():
            self._ready.set_exception(EOFError())
        for future in list(self._pending.values()):
            future.set_exception(EOFError())

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr.append(line.rstrip())

    def _ask(self, request: dict[str, Any], timeout: float = ANSWER_TIMEOUT) -> dict[str, Any]:
        if self.stop_report is not None or self.process.poll() is not None:
            raise LabError("This daphne server has stopped; start one with serve(..., server='daphne').")
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        number = next(self._ids)
        self._pending[number] = future
        assert self.process.stdin is not None
        with self._write:
            self.process.stdin.write(wire.encode({"id": number, **request}))
            self.process.stdin.flush()
        try:
            answer = future.result(timeout)
        except concurrent.futures.TimeoutError:
            self._pending.pop(number, None)
            raise LabError(f"daphne's subprocess did not answer within {timeout:.0f} s "
                           "(is its loop blocked?).") from None
        except EOFError:
            raise LabError(f"daphne's subprocess exited: {self._stderr_tail()}") from None
        if "error" in answer:
            raise LabError(f"daphne's subprocess could not answer: {answer['message']}.")
        return answer

    def _wait_started(self) -> None:
        try:
            self._ready.result(START_TIMEOUT)
        except concurrent.futures.TimeoutError:
            raise LabError(f"daphne did not start within {START_TIMEOUT:.0f} s.") from None
        except EOFError:
            raise LabError(f"daphne stopped during start-up: {self._stderr_tail()}") from None

    def _stderr_tail(self) -> str:
        lines = [line for line in self._stderr if line.strip()]
        return lines[-1] if lines else f"exit code {self.process.poll()}"

    def _state(self) -> dict[str, Any]:
        return self._ask({"op": "state"})

    # What the probe and the notebooks read.

    @property
    def running(self) -> bool:
        return self.stop_report is None and self.process.poll() is None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def loop(self) -> Any:
        raise LabError("daphne's event loop is in its subprocess, not in this kernel.")

    def run_in_loop(self, coro: Any, timeout: float = 5.0) -> Any:
        coro.close()
        raise LabError("daphne's event loop is in its subprocess: code cannot be run on it from the kernel.")

    def count_alive(self, watch: Mapping[str, Callable[..., Any]]) -> dict[str, int]:
        """Counted by the subprocess on daphne's loop, functions identified by module and qualname."""
        addresses = {name: list(awaitchain.address_of(fn)) for name, fn in watch.items()}
        return dict(self._ask({"op": "count", "watch": addresses})["alive"])

    def tasks(self) -> set[RemoteTask]:
        """The tasks on daphne's loop, as listed by the subprocess (ids and names, not Task objects)."""
        return {RemoteTask(int(i), name) for i, name in self._state()["tasks"]}

    def extra_tasks(self) -> int:
        return max(0, len(self._state()["tasks"]) - self.baseline_tasks)

    def connections(self) -> int:
        """WebSocket and HTTP connections daphne tracks and whose client has not disconnected."""
        return int(self._state()["connections"])

    def cpu_seconds(self) -> float:
        """CPU time of the whole daphne subprocess (Twisted's reactor and the app share one thread there)."""
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def os_process(self) -> psutil.Process:
        return psutil.Process(self.process.pid)

    # Stopping.

    def stop(self, *, force: bool = False) -> StopReport:
        """Cancel the handlers still running (daphne has no graceful wait), then end the subprocess.

        Within about ``shutdown_timeout`` + 2 s; a subprocess that does not answer is killed and the
        report says it was stuck.
        """
        if self.stop_report is not None:
            return self.stop_report
        started = time.monotonic()
        handlers, other = 0, None
        try:
            answer = self._ask({"op": "stop", "timeout": 0.0 if force else self.shutdown_timeout},
                               timeout=self.shutdown_timeout + 2.0)
            handlers, other = int(answer["cancelled_handlers"]), int(answer["cancelled_other_tasks"])
        except LabError as error:
            self.log.add(logging.LogRecord("daphne", logging.ERROR, __file__, 0, str(error), None, None))
        finally:
            self._kill()
            self.stop_report = StopReport(time.monotonic() - started, handlers, other)
        return self.stop_report

    def _kill(self) -> None:
        """Close stdin (the agent's signal to exit), wait a little, then kill; release the pipes."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # already gone: nothing to tell it
                self.process.stdin.close()
        try:
            self.process.wait(self.shutdown_timeout + 2.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for reader in self._readers:
            reader.join(1.0)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def _record(fields: dict[str, Any]) -> logging.LogRecord:
    """A log record of the subprocess, its exception carried by class name and text."""
    exc_info = None
    if fields.get("exc_type"):
        error = stand_in(fields["exc_type"], fields.get("exc_text") or "")
        exc_info = (type(error), error, None)
    return logging.LogRecord(fields["name"], fields["levelno"], "daphne subprocess", 0, fields["message"], None,
                             exc_info)
