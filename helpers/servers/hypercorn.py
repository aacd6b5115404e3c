"""hypercorn in the kernel's process, on the lab's server thread (the checker's ``HypercornRunner``)."""

from __future__ import annotations

import logging
import os
from typing import ClassVar

from helpers.errors import LabError
from helpers.routes import ASGIApp
from helpers.servers.base import InProcessServer
from ws_leakcheck.servers import HypercornRunner

ERROR_LOGGER = HypercornRunner.error_logger


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
        logging.getLogger(ERROR_LOGGER).propagate = False  # collected in the server log, never printed to the cell
        super()._configure(app)
        assert isinstance(self.runner, HypercornRunner)
        self.config = self.runner.config

    def connections(self) -> int:
        """Connection tasks hypercorn runs right now (one per open TCP connection, its ``TCPServer``)."""
        return len(self.connection_tasks())
