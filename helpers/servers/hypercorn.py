"""hypercorn in the kernel's process, on the lab's server thread (``hypercorn.asyncio.serve``)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Coroutine
from typing import Any, ClassVar, cast

import hypercorn.asyncio
from hypercorn.config import Config, Sockets
from hypercorn.typing import ASGIFramework

from helpers.errors import LabError
from helpers.routes import ASGIApp
from helpers.servers.asgiscope import WithoutLifespan
from helpers.servers.base import InProcessServer

ERROR_LOGGER = "hypercorn.error"


class _BoundConfig(Config):
    """hypercorn's configuration, serving on the socket the lab bound (127.0.0.1, port read back)."""

    lab_socket: socket.socket

    def create_sockets(self) -> Sockets:
        return Sockets(secure_sockets=[], insecure_sockets=[self.lab_socket], quic_sockets=[])


class HypercornServer(InProcessServer):
    """hypercorn on the lab's server thread.

    Pings: ``websocket_ping_interval`` (hypercorn's default: None, no pings). hypercorn has no
    ping timeout: an unanswered ping ends nothing; the lab refuses a ``ping_timeout``.
    hypercorn 0.18 declares ASGI spec 2.3 and drops a send to a closed connection silently.
    ``shutdown_timeout`` is hypercorn's ``graceful_timeout``: after it, hypercorn stops waiting
    for its connection tasks but does not cancel them; the lab cancels and counts them.
    """

    name = "hypercorn"
    distribution = "hypercorn"
    keepalive_defaults: ClassVar[dict[str, float | None]] = {"ping_interval": None, "ping_timeout": None}
    loggers = (ERROR_LOGGER, "asyncio")
    connection_coroutine = (f"hypercorn{os.sep}asyncio{os.sep}run.py", "_server_callback")

    def _configure(self, app: ASGIApp) -> None:
        if self.ping_timeout is not None:
            raise LabError(
                f"hypercorn has no WebSocket ping timeout, so it cannot honour ping_timeout={self.ping_timeout!r}: "
                "pass None (an unanswered ping ends nothing there)."
            )
        self._app = app
        error_logger = logging.getLogger(ERROR_LOGGER)
        error_logger.propagate = False  # collected in the server log, never printed to the cell
        config = _BoundConfig()
        config.lab_socket = self._sock
        config.bind = [f"127.0.0.1:{self.port}"]
        config.errorlog = error_logger
        config.accesslog = None
        config.websocket_ping_interval = self.ping_interval
        config.graceful_timeout = self.shutdown_timeout
        self.config = config
        self._up = threading.Event()
        self._stop: asyncio.Event | None = None

    def _serve(self, sock: socket.socket) -> Coroutine[Any, Any, None]:
        return self._run()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        stop = self._stop

        async def trigger() -> None:
            # hypercorn awaits its shutdown trigger only once every listener is serving.
            self._up.set()
            await stop.wait()

        app = self._app if self.lifespan else WithoutLifespan(self._app)
        # hypercorn's own ASGIFramework type spells out each scope and event; the app is an ASGI app all the same.
        await hypercorn.asyncio.serve(cast(ASGIFramework, app), self.config, shutdown_trigger=trigger)

    def _started(self) -> bool:
        return self._up.is_set()

    def _request_shutdown(self, force: bool) -> None:
        if force:
            self.config.graceful_timeout = 0
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)

    def connections(self) -> int:
        """Connection tasks hypercorn runs right now (one per open TCP connection, its ``TCPServer``)."""
        return len(self.connection_tasks())
