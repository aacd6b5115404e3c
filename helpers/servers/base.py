"""What every lab server offers, and the part shared by the servers that run in the kernel's process.

A lab server listens on 127.0.0.1 only, on a port the system picks (``port=0``; the real port
is read back), and stops within a bounded time whatever its handlers do: handlers still
running after the graceful wait are cancelled and counted in the ``StopReport``.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import errno
import json
import logging
import socket
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from enum import Enum
from importlib import metadata
from types import CodeType
from typing import Any, ClassVar, TypeVar

import psutil
import websockets.sync.client as sync_client

from helpers.errors import LabError
from helpers.loopthread import LoopThread
from helpers.routes import ASGIApp, check_websocket_path
from helpers.serverlog import ServerLog
from helpers.servers.asgiscope import SCOPE_PATH, ScopeReporter
from ws_leakcheck import awaitchain
from ws_leakcheck.errors import UsageError
from ws_leakcheck.owner_only import OwnerOnly
from ws_leakcheck.servers import HOST as HOST
from ws_leakcheck.servers import RUNNERS, ServerRunner

T = TypeVar("T")
START_TIMEOUT = 5.0
IN_LOOP_TIMEOUT = 0.1


class ServerDefault(Enum):
    """The server's own default for a setting (each server's is in its ``keepalive_defaults``)."""

    DEFAULT = "the server's default"


DEFAULT = ServerDefault.DEFAULT
Seconds = float | None | ServerDefault


@dataclass(frozen=True)
class StopReport:
    """What stopping a server took: its seconds, and what was still running and had to be cancelled."""

    seconds: float
    cancelled_handlers: int
    """Connection handlers still running after the graceful wait, and cancelled."""
    cancelled_other_tasks: int | None
    """Tasks left on the loop after the server returned (orphans the app started), cancelled by the lab.
    None: unknown, because the server's loop did not answer (a handler blocks it); see ``stuck``."""

    @property
    def stuck(self) -> bool:
        """The server's loop never answered the stop: what was left could not be counted."""
        return self.cancelled_other_tasks is None

    def __str__(self) -> str:
        if self.stuck:
            return (
                f"server abandoned after {self.seconds:.2f} s: its loop is stuck (a handler blocks it), "
                f"so the tasks left are unknown; {self.cancelled_handlers} stuck handler(s) cancelled before"
            )
        return (
            f"server stopped in {self.seconds:.2f} s; cancelled {self.cancelled_handlers} stuck handler(s) "
            f"and {self.cancelled_other_tasks} other task(s)"
        )


@dataclass(frozen=True)
class RemoteTask:
    """A task of a server in another process, as listed there (it was not done then)."""

    id: int
    name: str

    def done(self) -> bool:
        return False


def bind(port: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket bound to 127.0.0.1:``port`` (0: a free port), or LabError in one sentence."""
    if not 0 <= port <= 65535:
        raise LabError(f"Port {port} is not a TCP port number (0 to 65535; 0 lets the system pick).")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise LabError(f"Port {port} on {HOST} is already in use; pass port=0 to let the system pick a "
                           "free one.") from None
        raise LabError(f"Cannot listen on {HOST}:{port}: {error.strerror}.") from None
    if listen:
        sock.listen(128)
    sock.set_inheritable(True)
    return sock


def seconds_or_default(name: str, value: Seconds, default: float | None) -> float | None:
    if value is DEFAULT:
        return default
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise LabError(f"{name} must be a positive number of seconds or None, not {value!r}.")
    return value


class LabServer(abc.ABC):
    """A real ASGI server serving one app for the lab (one of uvicorn, hypercorn, granian, daphne).

    Read by the probe, the experiment and the notebooks: ``port``, ``url(path)``, ``running``,
    ``connections()``, ``tasks()``, ``extra_tasks()``, ``count_alive(watch)``, ``cpu_seconds()``,
    ``log`` and ``stop()``. ``name``, ``version``, ``spec_version`` and ``keepalive_defaults``
    say which server it is and what it does by default.
    """

    name: ClassVar[str]
    distribution: ClassVar[str]
    keepalive_defaults: ClassVar[Mapping[str, float | None]]
    """The server's own keepalive settings when the lab passes none (read from its source)."""

    app: ASGIApp
    port: int
    """The port it listens on, on 127.0.0.1 (chosen by the system unless ``serve(port=...)`` named one)."""
    log: ServerLog
    """The server's log records, kept instead of printed: ``log.errors()``, ``log.exception_types()``."""
    ping_interval: float | None
    """Seconds between the server's WebSocket pings; None when it sends none."""
    ping_timeout: float | None
    """Seconds the server waits for a pong before closing the connection; None when it waits forever."""
    shutdown_timeout: float
    stop_report: StopReport | None = None
    _spec: Mapping[str, Any] | None = None

    @property
    def version(self) -> str:
        return metadata.version(self.distribution)

    def url(self, path: str) -> str:
        """The ``ws://`` address of one of the app's WebSocket routes (checked)."""
        check_websocket_path(self.app, path)
        return f"ws://{HOST}:{self.port}{path}"

    @property
    def asgi_scope(self) -> Mapping[str, Any]:
        """``scope["asgi"]`` as this server sends it to a WebSocket handler, read once by a real client.

        The lab wraps the app (``helpers.servers.asgiscope``): a connection to a reserved path is
        answered with the scope's ``asgi`` entry and never reaches the app.
        """
        if self._spec is None:
            if not self.running:
                raise LabError(f"This {self.name} server has stopped: read spec_version while it runs.")
            with sync_client.connect(f"ws://{HOST}:{self.port}{SCOPE_PATH}", open_timeout=5) as ws:
                self._spec = json.loads(ws.recv(timeout=5))
        return self._spec

    @property
    def spec_version(self) -> str | None:
        """``scope["asgi"]["spec_version"]`` for WebSocket scopes; None where the server sends none."""
        return self.asgi_scope.get("spec_version")

    @classmethod
    @abc.abstractmethod
    def start(cls, source: ASGIApp | str, loaded: ASGIApp, **settings: Any) -> LabServer:
        """Serve ``loaded``, the app ``source`` names (``serve()``'s argument: an object, or ``"module:attribute"``
        for a server that imports the app in a process of its own), with ``serve()``'s settings."""

    @property
    @abc.abstractmethod
    def running(self) -> bool:
        """Whether the server still serves: False once it is stopped or its thread or process has ended."""

    @abc.abstractmethod
    def connections(self) -> int:
        """Connections the server holds open right now, as it counts them (HTTP ones included)."""

    @abc.abstractmethod
    def tasks(self) -> set[Any]:
        """The tasks on the server's event loop now."""

    @abc.abstractmethod
    def extra_tasks(self) -> int:
        """Tasks on the server's loop beyond those it had when idle: handlers and what they started."""

    @abc.abstractmethod
    def count_alive(self, watch: Mapping[str, Callable[..., Any]]) -> dict[str, int]:
        """Live coroutines of each watched function, found on the server's tasks' await chains."""

    @abc.abstractmethod
    def cpu_seconds(self) -> float:
        """CPU time the server has used so far, in seconds (its thread's, or its subprocess's for daphne)."""

    @abc.abstractmethod
    def stop(self, *, force: bool = False) -> StopReport:
        """Stop within a bounded time: wait ``shutdown_timeout`` for the handlers, cancel what is left, free the
        port. ``force`` skips the graceful wait. The report says what had to be cancelled."""

    def listening_addresses(self) -> list[tuple[str, int]]:
        """The addresses this server's process listens on for this server's port."""
        return sorted({
            (c.laddr.ip, c.laddr.port) for c in self.os_process().net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == self.port
        })

    def os_process(self) -> psutil.Process:
        """The operating-system process the server runs in (the kernel's, or daphne's subprocess)."""
        return psutil.Process()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"<{self.name} {self.version} {state} on {HOST}:{self.port} "
            f"ping={self.ping_interval}/{self.ping_timeout}>"
        )


class InProcessServer(LabServer):
    """A server running in the kernel's process, on a thread with its own event loop.

    Not the kernel's loop: a cell that blocks (``time.sleep``, a long computation, a synchronous
    experiment drawing plots) would otherwise stall every connection, and a KeyboardInterrupt
    would land inside the server. The app's handlers run on that loop, where the probe walks
    their tasks. The server is built, started and stopped by its runner (``ws_leakcheck.servers.RUNNERS``, the
    checker's adapters); subclasses add the settings they refuse and say how to count their server.
    """

    @classmethod
    def start(cls, source: ASGIApp | str, loaded: ASGIApp, **settings: Any) -> LabServer:
        return cls(loaded, **settings)  # in the kernel's process: the app object itself

    def __init__(
        self,
        app: ASGIApp,
        *,
        ping_interval: float | None,
        ping_timeout: float | None,
        shutdown_timeout: float,
        port: int,
        lifespan: bool,
    ) -> None:
        self.stop_report = None
        self.app = app
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.shutdown_timeout = shutdown_timeout
        self.lifespan = lifespan
        self._sock = bind(port, listen=self.listen_before_start)
        self.port = self._sock.getsockname()[1]
        try:
            self._configure(OwnerOnly(ScopeReporter(app)))
        except BaseException:  # e.g. a LabError for settings this server cannot honour: the socket is not left open
            self._sock.close()
            raise
        self.baseline_tasks = 0
        self.thread = LoopThread(f"lab-server-{self.port}")
        assert self.thread.ident is not None
        self.log = ServerLog(self.log_thread_filter(self.thread.ident), self.loggers)
        try:
            self._attach_log()
            self.thread.loop.call_soon_threadsafe(self.thread.loop.set_exception_handler, self._loop_exception)
            self._serving: concurrent.futures.Future[None] = self.thread.submit(self._serve(self._sock))
            self._wait_started()
        except BaseException:
            # A LabError, or a KeyboardInterrupt while waiting: leave no thread, socket or log handler.
            self._teardown()
            self.stop_report = StopReport(0.0, 0, 0)
            raise
        self.baseline_tasks = len(self.thread.tasks())

    # What a subclass provides.

    loggers: ClassVar[tuple[str, ...]] = ("asyncio",)
    listen_before_start: ClassVar[bool] = True
    runner: ServerRunner
    connection_coroutine: ClassVar[tuple[str, str]]
    """(a fragment of its file's path, its name): the outermost coroutine of the server's task per connection."""

    def log_thread_filter(self, thread_id: int) -> int | None:
        return thread_id

    def _options(self) -> dict[str, Any]:
        """The settings of this server's runner (``ws_leakcheck.servers``)."""
        return {"ping_interval": self.ping_interval, "ping_timeout": self.ping_timeout,
                "shutdown_timeout": self.shutdown_timeout, "lifespan": self.lifespan}

    def _configure(self, app: ASGIApp) -> None:
        """Build the server for ``app`` (already wrapped) on ``self._sock``: its runner, the checker's adapter."""
        try:
            self.runner = RUNNERS[self.name](app, self._sock, self._options())
        except UsageError as error:
            raise LabError(str(error)) from None

    def _serve(self, sock: socket.socket) -> Coroutine[Any, Any, None]:
        """The coroutine that runs the server until it is told to stop."""
        return self.runner.serve()

    def _started(self) -> bool:
        return self.runner.started()

    def _request_shutdown(self, force: bool) -> None:
        """Ask the server to stop (from the calling thread): gracefully, or at once with ``force``."""
        self.runner.stop(force)

    def _escalate(self) -> None:
        """The graceful stop did not end in time: hurry the server up if it has a way to."""

    def _cancelled_handlers(self, at_stop: set[asyncio.Task[Any]]) -> int:
        """Of the connection tasks running when the stop began, those cancelled or still running now
        (the lab cancels the latter)."""
        return sum(1 for task in at_stop if not task.done() or task.cancelled())

    # Start-up.

    def _wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self._started():
            if self._serving.done():
                error = self._serving.exception()
                raise LabError(f"{self.name} stopped during start-up: {error!r}.")
            if time.monotonic() > deadline:
                raise LabError(f"{self.name} did not start within {START_TIMEOUT:.0f} s.")
            time.sleep(0.005)

    def _attach_log(self) -> None:
        self.log.attach()

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's unhandled-error reports on the server's loop go to the server log, not to the cell."""
        error = context.get("exception")
        record = logging.LogRecord(
            "asyncio", logging.ERROR, __file__, 0, context.get("message", "Unhandled error in the event loop"),
            None, (type(error), error, error.__traceback__) if error is not None else None,
        )
        self.log.add(record)

    # What the probe and the notebooks read.

    def run_in_loop(self, coro: Coroutine[Any, Any, T], timeout: float = 5.0) -> T:
        """Run a coroutine on the server's loop (where the app's queues and events live) and return its result."""
        return self.thread.call(coro, timeout)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.thread.loop

    @property
    def running(self) -> bool:
        return self.stop_report is None and not self._serving.done()

    def tasks(self) -> set[asyncio.Task[Any]]:
        return self.thread.tasks()

    def extra_tasks(self) -> int:
        """Tasks on the server's loop beyond the idle server's own."""
        return max(0, len(self.thread.tasks()) - self.baseline_tasks)

    def count_alive(self, watch: Mapping[str, Callable[..., Any]]) -> dict[str, int]:
        """Counted on the server's loop between two steps, where every coroutine is suspended and
        its await chain complete; read from this thread instead if the loop does not answer in time
        (a handler that blocks the loop)."""
        codes = {name: awaitchain.code_of(fn) for name, fn in watch.items()}
        return self.count_codes(codes)

    def count_codes(self, codes: Mapping[str, CodeType]) -> dict[str, int]:
        if self.running:
            try:
                return awaitchain.between_steps(self.loop, lambda: awaitchain.count_alive(self.tasks(), codes),
                                                IN_LOOP_TIMEOUT)
            except (RuntimeError, concurrent.futures.TimeoutError):
                pass  # the loop did not answer in time: count from this thread
        return awaitchain.count_alive(self.tasks(), codes)

    def connection_tasks(self) -> set[asyncio.Task[Any]]:
        """The server's running tasks for its connections (each one's outermost coroutine is
        ``connection_coroutine``)."""
        fragment, name = self.connection_coroutine
        found = set()
        for task in self.tasks():
            code = _outermost_code(task)
            if code is not None and code.co_name == name and fragment in code.co_filename and not task.done():
                found.add(task)
        return found

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server's loop thread, where the app runs (psutil, read from any thread)."""
        native_id = self.thread.native_id
        for thread in psutil.Process().threads():
            if thread.id == native_id:
                return float(thread.user_time + thread.system_time)
        return 0.0

    # Stopping.

    def stop(self, *, force: bool = False) -> StopReport:
        """Shut down within about ``shutdown_timeout`` seconds, whatever the handlers are doing.

        ``force`` skips the graceful wait: every handler still running is cancelled at once.
        A KeyboardInterrupt while stopping still releases the thread and the port, then propagates.
        """
        if self.stop_report is not None:
            return self.stop_report
        started = time.monotonic()
        handlers = left = 0
        other: int | None = None
        try:
            at_stop = self.connection_tasks()
            self._request_shutdown(force)
            try:
                self._serving.result(self.shutdown_timeout + 2.0)
            except concurrent.futures.TimeoutError:
                self._escalate()
            except (Exception, concurrent.futures.CancelledError) as error:  # noqa: BLE001 - the serve task's own failure
                self.log.add(logging.LogRecord(
                    self.name, logging.ERROR, __file__, 0, f"{self.name} failed while stopping",
                    None, (type(error), error, error.__traceback__),
                ))
            left = sum(1 for task in at_stop if not task.done())
            handlers = self._cancelled_handlers(at_stop)
        finally:
            cancelled = self._teardown()
            if cancelled is not None:
                other = max(0, cancelled - left)
            self.stop_report = StopReport(time.monotonic() - started, handlers, other)
        return self.stop_report

    def _teardown(self) -> int | None:
        cancelled = self.thread.stop()
        self._sock.close()
        self.log.detach()
        return cancelled


def _outermost_code(task: asyncio.Task[Any]) -> CodeType | None:
    coro = task.get_coro()
    return getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
