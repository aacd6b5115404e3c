"""A real uvicorn server inside the notebook's own process.

The server runs on a thread with its own event loop, not on the kernel's loop: a cell that
blocks (``time.sleep``, a long computation, a synchronous experiment that draws plots)
would otherwise stall every connection, and a KeyboardInterrupt would land inside the
server. uvicorn installs no signal handlers off the main thread, so interrupting the
kernel never shuts the server down by surprise.

Only one lab server lives at a time: ``serve()`` stops the previous one first, so
re-running a cell or a whole notebook never leaves a server or a port behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import importlib.util
import socket
import time
import warnings
from dataclasses import dataclass
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

import uvicorn

from helpers.errors import LabError
from helpers.loopthread import LoopThread
from helpers.routes import ASGIApp, check_websocket_path, load_app
from helpers.serverlog import ServerLog

T = TypeVar("T")
HOST = "127.0.0.1"
CANCELLED_MESSAGE = "Cancel %s running task(s), timeout graceful shutdown exceeded"  # uvicorn's own count
Backend = Literal["websockets-sansio", "wsproto", "websockets"]
BACKENDS: dict[str, str] = {"websockets-sansio": "websockets", "wsproto": "wsproto", "websockets": "websockets"}


@dataclass(frozen=True)
class StopReport:
    seconds: float
    cancelled_handlers: int
    """Connection tasks uvicorn still had after the graceful timeout, and cancelled."""
    cancelled_other_tasks: int
    """Tasks left on the loop after uvicorn returned (orphans the app started), cancelled by the lab."""

    def __str__(self) -> str:
        return (
            f"server stopped in {self.seconds:.2f} s; cancelled {self.cancelled_handlers} stuck handler(s) "
            f"and {self.cancelled_other_tasks} other task(s)"
        )


class LabServer:
    def __init__(
        self,
        app: ASGIApp,
        *,
        ws: Backend,
        ping_interval: float | None,
        ping_timeout: float | None,
        shutdown_timeout: float,
        port: int,
        lifespan: bool = False,
    ) -> None:
        self.app = app
        self.ws = ws
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.shutdown_timeout = shutdown_timeout
        sock = _bind(port)
        self.port: int = sock.getsockname()[1]
        self.config = uvicorn.Config(
            app,
            host=HOST,
            port=self.port,
            ws=ws,
            ws_ping_interval=ping_interval,
            ws_ping_timeout=ping_timeout,
            log_config=None,
            lifespan="on" if lifespan else "off",
            timeout_graceful_shutdown=shutdown_timeout,
        )
        self.uvicorn = uvicorn.Server(self.config)
        with warnings.catch_warnings():
            # The deprecated `websockets` backend is compared on purpose; the notebooks say it is deprecated.
            warnings.filterwarnings("ignore", message="The `websockets` implementation is deprecated")
            self.config.load()
        self.thread = LoopThread(f"lab-server-{self.port}")
        assert self.thread.ident is not None
        self.log = ServerLog(self.thread.ident)
        self.log.attach()
        self._serving: concurrent.futures.Future[None] = self.thread.submit(self.uvicorn.serve(sockets=[sock]))
        self._sock = sock
        self._wait_started()
        self.baseline_tasks = len(self.thread.tasks())
        self.stop_report: StopReport | None = None

    def _wait_started(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.uvicorn.started:
            if self._serving.done():
                error = self._serving.exception()
                self._teardown()
                raise LabError(f"The server stopped during start-up: {error!r}.")
            if time.monotonic() > deadline:
                self.stop()
                raise LabError(f"The server did not start within {timeout:.0f} s.")
            time.sleep(0.005)

    def run_in_loop(self, coro: Coroutine[Any, Any, T], timeout: float = 5.0) -> T:
        """Run a coroutine on the server's loop (where the app's queues and events live) and return its result."""
        return self.thread.call(coro, timeout)

    # What the probe and the notebooks read.

    def url(self, path: str) -> str:
        """The ``ws://`` address of one of the app's WebSocket routes (checked)."""
        check_websocket_path(self.app, path)
        return f"ws://{HOST}:{self.port}{path}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.thread.loop

    @property
    def running(self) -> bool:
        return self.stop_report is None and not self._serving.done()

    def connections(self) -> int:
        """Connections uvicorn holds open right now."""
        return len(self.uvicorn.server_state.connections)

    def tasks(self) -> set[asyncio.Task[Any]]:
        return self.thread.tasks()

    def extra_tasks(self) -> int:
        """Tasks on the server's loop beyond the idle server's own."""
        return max(0, len(self.thread.tasks()) - self.baseline_tasks)

    def cpu_seconds(self) -> float:
        """CPU time the server's thread has used so far (read on that thread: ``time.thread_time``)."""

        async def read() -> float:
            return time.thread_time()

        return self.run_in_loop(read(), timeout=2.0)

    def listening_addresses(self) -> list[tuple[str, int]]:
        return [s.getsockname()[:2] for server in getattr(self.uvicorn, "servers", []) for s in server.sockets]

    # Stopping.

    def stop(self, *, force: bool = False) -> StopReport:
        """Shut down within about ``shutdown_timeout`` seconds, whatever the handlers are doing.

        ``force`` skips uvicorn's graceful wait: every handler still running is cancelled at once
        (and counted among the other tasks).
        """
        if self.stop_report is not None:
            return self.stop_report
        started = time.monotonic()
        self.uvicorn.force_exit = force
        self.uvicorn.should_exit = True
        try:
            self._serving.result(self.shutdown_timeout + 2.0)
        except concurrent.futures.TimeoutError:
            self.uvicorn.force_exit = True
        except BaseException:  # noqa: BLE001 - the serve task's own failure is in the server log
            pass
        cancelled_handlers = sum(
            int(r.args[0]) for r in self.log.records if r.msg == CANCELLED_MESSAGE and isinstance(r.args, tuple)
        )
        cancelled_other = self._teardown()
        self.stop_report = StopReport(time.monotonic() - started, cancelled_handlers, max(0, cancelled_other))
        return self.stop_report

    def _teardown(self) -> int:
        cancelled = self.thread.stop()
        self._sock.close()
        self.log.detach()
        global _current
        if _current is self:
            _current = None
        return cancelled

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LabServer {state} on {HOST}:{self.port} ws={self.ws} ping={self.ping_interval}/{self.ping_timeout}>"


def _bind(port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise LabError(f"Port {port} is not a TCP port number (0 to 65535; 0 lets the system pick).")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise LabError(f"Port {port} on {HOST} is already in use; pass port=0 to let the system pick a free one.") from None
        raise LabError(f"Cannot listen on {HOST}:{port}: {error.strerror}.") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _check_backend(ws: str) -> None:
    if ws not in BACKENDS:
        raise LabError(f"Unknown WebSocket backend {ws!r}; choose one of {', '.join(BACKENDS)}.")
    if importlib.util.find_spec(BACKENDS[ws]) is None:
        raise LabError(f"The {ws!r} backend needs the {BACKENDS[ws]!r} package, which is not installed.")


_current: LabServer | None = None


def serve(
    app: ASGIApp | str,
    *,
    ws: Backend = "websockets-sansio",
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    shutdown_timeout: float = 1.0,
    port: int = 0,
    lifespan: bool = False,
) -> LabServer:
    """Start ``app`` on 127.0.0.1 (port 0: a free port), replacing the lab server already running.

    ``ping_interval``/``ping_timeout`` are uvicorn's keepalive settings (its defaults: 20 s and
    20 s; ``None`` turns pings off). ``shutdown_timeout`` bounds how long ``stop()`` waits for
    handlers before cancelling them. ``lifespan=True`` runs the app's lifespan (startup and
    shutdown); it is off by default, so that re-serving an app never repeats its start-up work.
    """
    global _current
    _check_backend(ws)
    for name, value in (("ping_interval", ping_interval), ("ping_timeout", ping_timeout)):
        if value is not None and value <= 0:
            raise LabError(f"{name} must be a positive number of seconds or None, not {value!r}.")
    loaded = load_app(app)
    stop_current()
    _current = LabServer(
        loaded, ws=ws, ping_interval=ping_interval, ping_timeout=ping_timeout,
        shutdown_timeout=shutdown_timeout, port=port, lifespan=lifespan,
    )
    return _current


def current() -> LabServer | None:
    return _current


def stop_current() -> StopReport | None:
    """Stop the running lab server, if any."""
    return _current.stop() if _current is not None else None
