"""uvicorn in the kernel's process, with any of its three WebSocket backends (``ws=``)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from typing import Any, ClassVar, Literal

from helpers.errors import LabError
from helpers.routes import ASGIApp
from helpers.servers.base import InProcessServer
from ws_leakcheck.servers import UVICORN_BACKENDS, UvicornRunner

CANCELLED_MESSAGE = "Cancel %s running task(s), timeout graceful shutdown exceeded"  # uvicorn's own count
Backend = Literal["websockets-sansio", "wsproto", "websockets"]
BACKENDS = UVICORN_BACKENDS


def check_backend(ws: str) -> None:
    if ws not in BACKENDS:
        raise LabError(f"Unknown WebSocket backend {ws!r}; choose one of {', '.join(BACKENDS)}.")
    if importlib.util.find_spec(BACKENDS[ws]) is None:
        raise LabError(f"The {ws!r} backend needs the {BACKENDS[ws]!r} package, which is not installed.")


class UvicornServer(InProcessServer):
    """uvicorn (``uvicorn.Server.serve``, run by the checker's ``UvicornRunner``) on the lab's server thread.

    Pings: ``ws_ping_interval``/``ws_ping_timeout`` (uvicorn's defaults: 20 s and 20 s; None: no pings).
    uvicorn declares ASGI spec 2.4 and raises on a send to a closed connection.
    """

    name = "uvicorn"
    distribution = "uvicorn"
    keepalive_defaults: ClassVar[dict[str, float | None]] = {"ping_interval": 20.0, "ping_timeout": 20.0}
    loggers = ("uvicorn", "asyncio")  # uvicorn.error and uvicorn.access propagate to "uvicorn"
    connection_coroutine = (f"uvicorn{os.sep}protocols{os.sep}websockets", "run_asgi")

    def __init__(self, app: ASGIApp, *, ws: Backend = "websockets-sansio", **settings: Any) -> None:
        check_backend(ws)
        self.ws = ws
        super().__init__(app, **settings)

    def _options(self) -> dict[str, Any]:
        # proxy_headers False: the client in the scope is the TCP peer, as ws_leakcheck.owner_only needs, not what an
        # X-Forwarded-For header says (uvicorn trusts it from 127.0.0.1, where configurable-http-proxy adds it).
        return {**super()._options(), "ws": self.ws, "proxy_headers": False}

    def _configure(self, app: ASGIApp) -> None:
        super()._configure(app)
        assert isinstance(self.runner, UvicornRunner)
        self.config = self.runner.config
        self.uvicorn = self.runner.server

    def _escalate(self) -> None:
        self.runner.stop(force=True)

    def _cancelled_handlers(self, at_stop: set[asyncio.Task[Any]]) -> int:
        """uvicorn's own count of the tasks it cancelled, plus those still running (the lab cancels them)."""
        return sum(
            r.args[0] for r in self.log.records
            if r.msg == CANCELLED_MESSAGE and isinstance(r.args, tuple) and isinstance(r.args[0], int)
        ) + sum(1 for task in at_stop if not task.done())

    def connections(self) -> int:
        """Connections uvicorn holds open right now (its ``server_state.connections``; HTTP ones included)."""
        return len(self.uvicorn.server_state.connections)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f" ws={self.ws}>"
