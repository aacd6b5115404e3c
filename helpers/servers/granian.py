"""granian in the kernel's process: its embedded server (the checker's ``GranianRunner``), whose app runs on the
lab's server thread.

granian's HTTP and WebSocket I/O runs on its own Rust threads; the app's coroutines run as
asyncio tasks on the loop that awaits ``Server.serve()``, the lab's server thread, where the
probe walks them.
"""

from __future__ import annotations

import os
from typing import ClassVar

from helpers.errors import LabError
from helpers.routes import ASGIApp
from helpers.serverlog import TracebackText
from helpers.servers.base import InProcessServer
from ws_leakcheck.servers import GRANIAN_LOGGERS, GranianRunner


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
    loggers = GRANIAN_LOGGERS
    connection_coroutine = (f"granian{os.sep}_futures.py", "future_watcher")

    def log_thread_filter(self, thread_id: int) -> int | None:
        return None  # granian's Rust threads log too; only the lab's one granian uses these loggers

    def _configure(self, app: ASGIApp) -> None:
        check_pings(self.ping_interval, self.ping_timeout)
        self.log_filter = TracebackText()  # granian logs an app's exception as text
        super()._configure(app)
        assert isinstance(self.runner, GranianRunner)
        self.granian = self.runner.server

    def _attach_log(self) -> None:
        self.log.addFilter(self.log_filter)
        super()._attach_log()

    def connections(self) -> int:
        """ASGI calls granian has in flight (one per open WebSocket or HTTP request); its Rust side holds the
        sockets."""
        return len(self.connection_tasks())
