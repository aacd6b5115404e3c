"""uvicorn in the kernel's process, with any of its three WebSocket backends (``ws=``)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import warnings
from collections.abc import Coroutine
from typing import Any, ClassVar, Literal

import uvicorn

from helpers.errors import LabError
from helpers.routes import ASGIApp
from helpers.servers.base import InProcessServer

CANCELLED_MESSAGE = "Cancel %s running task(s), timeout graceful shutdown exceeded"  # uvicorn's own count
Backend = Literal["websockets-sansio", "wsproto", "websockets"]
BACKENDS: dict[str, str] = {"websockets-sansio": "websockets", "wsproto": "wsproto", "websockets": "websockets"}


def check_backend(ws: str) -> None:
    if ws not in BACKENDS:
        raise LabError(f"Unknown WebSocket backend {ws!r}; choose one of {', '.join(BACKENDS)}.")
    if importlib.util.find_spec(BACKENDS[ws]) is None:
        raise LabError(f"The {ws!r} backend needs the {BACKENDS[ws]!r} package, which is not installed.")


class UvicornServer(InProcessServer):
    """uvicorn (``uvicorn.Server.serve``) on the lab's server thread.

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

    def _configure(self, app: ASGIApp) -> None:
        self.config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            ws=self.ws,
            ws_ping_interval=self.ping_interval,
            ws_ping_timeout=self.ping_timeout,
            log_config=None,
            lifespan="on" if self.lifespan else "off",
            timeout_graceful_shutdown=self.shutdown_timeout,  # type: ignore[arg-type]  # annotated int; awaited as a float
        )
        self.uvicorn = uvicorn.Server(self.config)
        with warnings.catch_warnings():
            # The deprecated `websockets` backend is compared on purpose; the notebooks say it is deprecated.
            warnings.filterwarnings("ignore", message="The `websockets` implementation is deprecated")
            self.config.load()

    def _serve(self, sock: socket.socket) -> Coroutine[Any, Any, None]:
        return self._run(sock)

    async def _run(self, sock: socket.socket) -> None:
        await self.uvicorn.serve(sockets=[sock])

    def _started(self) -> bool:
        return self.uvicorn.started

    def _request_shutdown(self, force: bool) -> None:
        self.uvicorn.force_exit = force
        self.uvicorn.should_exit = True

    def _escalate(self) -> None:
        self.uvicorn.force_exit = True

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
