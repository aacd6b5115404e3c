"""granian in the kernel's process: its embedded server, whose app runs on the lab's server thread.

granian's HTTP and WebSocket I/O runs on its own Rust threads; the app's coroutines run as
asyncio tasks on the loop that awaits ``Server.serve()``, the lab's server thread, where the
probe walks them.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Coroutine
from typing import Any, ClassVar

from granian._granian import SocketHolder
from granian.constants import Interfaces, TaskImpl
from granian.log import LogLevels
from granian.server.embed import Server

from helpers.errors import LabError
from helpers.routes import ASGIApp
from helpers.serverlog import TracebackText
from helpers.servers.base import InProcessServer

LOGGER = "_granian"  # the name granian's Python and Rust sides log under
QUIET_LOGGING = {
    # Applied incrementally: granian's default configuration would print to the cell's stdout.
    "version": 1,
    "incremental": True,
    "handlers": {},
    "formatters": {},
    "loggers": {LOGGER: {"propagate": False}, "granian.access": {"propagate": False}},
}


class _BoundServer(Server):
    """granian's embedded server, listening on the socket the lab bound (127.0.0.1, port read back)."""

    lab_socket: socket.socket

    def _init_shared_socket(self) -> None:
        self._ssp = None
        self._shd = SocketHolder(os.dup(self.lab_socket.fileno()), False, 128)  # type: ignore[call-arg, assignment]  # granian's stub omits the constructor


def check_pings(ping_interval: float | None, ping_timeout: float | None) -> None:
    if ping_interval is not None or ping_timeout is not None:
        raise LabError(
            "granian sends no WebSocket pings (granian issue #613), so it cannot honour "
            f"ping_interval={ping_interval!r}/ping_timeout={ping_timeout!r}: pass None for both."
        )


class GranianServer(InProcessServer):
    """granian (embedded) on the lab's server thread.

    Pings: none; granian has no server-side WebSocket pings (granian #613), so the lab refuses
    a ping setting rather than ignore it silently. granian 2.8 declares ASGI spec 2.3 and makes
    a send to a closed connection a silent no-op (on purpose, granian #922).
    """

    name = "granian"
    distribution = "granian"
    keepalive_defaults: ClassVar[dict[str, float | None]] = {"ping_interval": None, "ping_timeout": None}
    loggers = (LOGGER, "granian.access")
    connection_coroutine = (f"granian{os.sep}_futures.py", "future_watcher")

    def log_thread_filter(self, thread_id: int) -> int | None:
        return None  # granian's Rust threads log too; only the lab's one granian uses these loggers

    def _configure(self, app: ASGIApp) -> None:
        check_pings(self.ping_interval, self.ping_timeout)
        self.log_filter = TracebackText()  # granian logs an app's exception as text
        self.granian = _BoundServer(
            app,
            address="127.0.0.1",
            port=self.port,
            interface=Interfaces.ASGI if self.lifespan else Interfaces.ASGINL,
            runtime_threads=1,
            task_impl=TaskImpl.asyncio,
            websockets=True,
            log_level=LogLevels.warning,
            log_dictconfig=QUIET_LOGGING,
        )
        self.granian.workers_kill_timeout = self.shutdown_timeout  # type: ignore[assignment]
        self.granian.lab_socket = self._sock
        self._up = threading.Event()
        self.granian.on_startup(self._up.set)

    def _serve(self, sock: socket.socket) -> Coroutine[Any, Any, None]:
        return self._run()

    async def _run(self) -> None:
        await self.granian.serve()

    def _attach_log(self) -> None:
        self.log.addFilter(self.log_filter)
        super()._attach_log()

    def _started(self) -> bool:
        return self._up.is_set() and bool(self.granian.wrks)

    def _request_shutdown(self, force: bool) -> None:
        self.loop.call_soon_threadsafe(self.granian.signal_handler_interrupt)

    def connections(self) -> int:
        """ASGI calls granian has in flight (one per open WebSocket or HTTP request); its Rust side holds the
        sockets."""
        return len(self.connection_tasks())
