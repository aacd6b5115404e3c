"""One adapter per server: build it for an app on a bound socket, serve, say when it started, stop it.

``RUNNERS`` lists them, one per server name (as uvicorn's ``WS_PROTOCOLS`` lists its WebSocket
backends). The checker's agent runs them on a loop of its own thread; the lab's ``serve()``
(``helpers.servers``) wraps the same runners, adding only the lab's extras (its server log, its
stop report, the settings it refuses); daphne's subprocess there runs ``DaphneRunner`` too.

Standard library only: each runner imports its server when it is built, so this module runs in
the project's interpreter (``--python``), where only the server asked for must be installed.

Settings (``options``), all optional: ``ping_interval``, ``ping_timeout`` (seconds, or None),
``lifespan`` (run the app's lifespan; default True), ``shutdown_timeout`` (the server's graceful
wait, in seconds), ``ws`` (uvicorn's WebSocket backend; default ``auto``), ``proxy_headers``
(uvicorn's; default True), ``application_close_timeout`` (daphne's; default 10).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ws_leakcheck.errors import UsageError

HOST = "127.0.0.1"
"""The only address anything here listens on: loopback, never every interface."""
UVICORN_BACKENDS: dict[str, str] = {"websockets-sansio": "websockets", "wsproto": "wsproto", "websockets": "websockets"}
"""uvicorn's WebSocket implementations (its ``--ws``), each with the package it needs."""


class ServerRunner:
    """One server serving one app. A runner turns (app, socket, settings) into a serving coroutine and back.

    ``serve()`` runs on the loop the server runs on; ``started()`` and ``stop()`` are called from any thread.
    """

    name = "?"
    distribution = "?"
    """The package the server needs."""
    added_wait = 0.0
    """Seconds this server adds to a departure on its own (close timeouts), beyond pings."""
    silent_detectable = True
    """Whether the server can notice a silent client at all (a ping with a timeout)."""
    log_any_thread = False
    """Whether the server logs the app's exceptions from threads other than the loop's (granian's Rust side)."""
    notes: tuple[str, ...] | list[str] = ()
    """What the report should say about this server; a runner with notes assigns its own list."""
    cancels_after: float | None = None
    """Seconds after a client left at which the server cancels a handler still running (daphne), or None."""
    own_process = False
    """Whether the server can run only once per process (Twisted's reactor): the lab then starts a process for it."""
    loop: asyncio.AbstractEventLoop | None = None
    """The loop the server needs, if it brings its own (daphne's reactor loop); else the caller makes one."""

    def run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_forever()

    def __init__(self, app: Any, sock: socket.socket, options: Mapping[str, Any]) -> None:
        self.app, self.sock, self.options = app, sock, dict(options)

    async def serve(self) -> None:
        raise NotImplementedError

    def started(self) -> bool:
        raise NotImplementedError

    def stop(self, force: bool) -> None:
        """Ask the server to stop (from any thread): gracefully, or at once with ``force``."""
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        return {}


class UvicornRunner(ServerRunner):
    """``uvicorn.Server.serve`` on the given socket, with any of uvicorn's WebSocket backends (``ws``)."""

    name = "uvicorn"
    distribution = "uvicorn"

    def __init__(self, app: Any, sock: socket.socket, options: Mapping[str, Any]) -> None:
        super().__init__(app, sock, options)
        import uvicorn

        ws = self.options.get("ws") or "auto"
        kwargs: dict[str, Any] = dict(
            host=HOST, port=sock.getsockname()[1], ws=ws, ws_ping_interval=self.options.get("ping_interval"),
            ws_ping_timeout=self.options.get("ping_timeout"), log_config=None,
            # False: the client in the scope is the TCP peer, not what an X-Forwarded-For header says (uvicorn
            # trusts it from 127.0.0.1); the lab's owner check needs the peer.
            proxy_headers=self.options.get("proxy_headers", True),
            lifespan="on" if self.options.get("lifespan", True) else "off",
        )
        settable = "timeout_graceful_shutdown" in inspect.signature(uvicorn.Config).parameters
        if self.options.get("shutdown_timeout") is not None and settable:
            kwargs["timeout_graceful_shutdown"] = self.options["shutdown_timeout"]
        self.config = uvicorn.Config(app, **kwargs)
        with warnings.catch_warnings():
            # e.g. the deprecated `websockets` backend, compared on purpose
            warnings.simplefilter("ignore")
            try:
                self.config.load()
            except Exception as error:  # noqa: BLE001 - e.g. a backend that is not installed
                raise UsageError(f"uvicorn cannot start with ws={ws!r}: {type(error).__name__}: {error}.") from None
        if getattr(self.config, "ws_protocol_class", True) is None:  # ws="auto" found no WebSocket library
            raise UsageError("uvicorn in this Python has no WebSocket library, so it answers every WebSocket "
                             "handshake with 404: install websockets (or uvicorn[standard]) there.")
        self.server = uvicorn.Server(self.config)
        if ws == "websockets":  # the deprecated backend closes with a 10 s close timeout of its own
            self.added_wait = 10.0

    async def serve(self) -> None:
        await self.server.serve(sockets=[self.sock])

    def started(self) -> bool:
        return bool(self.server.started)

    def stop(self, force: bool) -> None:
        self.server.force_exit = force
        self.server.should_exit = True

    def versions(self) -> dict[str, str]:
        import uvicorn

        protocol = getattr(self.config, "ws_protocol_class", None)
        backend = getattr(protocol, "__module__", "none").rsplit(".", 1)[-1].replace("_impl", "")
        return {"uvicorn": uvicorn.__version__, "uvicorn ws backend": backend}


class WithoutLifespan:
    """Answers the lifespan protocol itself, so the app's own start-up and shut-down never run.

    For a server that always runs the lifespan (hypercorn) when asked not to.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


class HypercornRunner(ServerRunner):
    """``hypercorn.asyncio.serve`` on the given socket, with a shutdown trigger.

    hypercorn sends pings only if asked (``websocket_ping_interval``) and has no ping timeout,
    so no departure of a silent client is ever noticed: the checker skips the silent way, and says so.
    After its ``graceful_timeout``, hypercorn stops waiting for its connection tasks but does not cancel them.
    """

    name = "hypercorn"
    distribution = "hypercorn"
    silent_detectable = False
    error_logger = "hypercorn.error"

    def __init__(self, app: Any, sock: socket.socket, options: Mapping[str, Any]) -> None:
        super().__init__(app, sock, options)
        from hypercorn.config import Config, Sockets

        class BoundConfig(Config):
            """hypercorn's configuration, serving on the socket bound for it."""

            def create_sockets(self) -> Sockets:
                return Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])

        config = BoundConfig()
        config.bind = [f"{HOST}:{sock.getsockname()[1]}"]
        config.errorlog = logging.getLogger(self.error_logger)
        config.accesslog = None
        config.websocket_ping_interval = self.options.get("ping_interval")
        if self.options.get("shutdown_timeout") is not None:
            config.graceful_timeout = float(self.options["shutdown_timeout"])
        self.config = config
        self._up = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.notes = [(f"hypercorn: pings every {self.options.get('ping_interval')} s and no ping timeout (hypercorn "
                       "has none), so a silent client is never noticed: the silent way is not run")]

    async def serve(self) -> None:
        import hypercorn.asyncio

        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        stop = self._stop

        async def trigger() -> None:
            self._up.set()  # hypercorn awaits its trigger once the lifespan started and every listener serves
            await stop.wait()

        app = self.app if self.options.get("lifespan", True) else WithoutLifespan(self.app)
        await hypercorn.asyncio.serve(app, self.config, shutdown_trigger=trigger)

    def started(self) -> bool:
        return self._up.is_set()

    def stop(self, force: bool) -> None:
        if force:
            self.config.graceful_timeout = 0
        if self._stop is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)


GRANIAN_LOGGERS = ("_granian", "granian.access")
"""The names granian's Python and Rust sides log under."""


class GranianRunner(ServerRunner):
    """granian's embedded server: its I/O on Rust threads, the app's coroutines on the loop that serves it.

    granian sends no WebSocket pings (granian #613): the checker skips the silent way, and says so.
    """

    name = "granian"
    distribution = "granian"
    silent_detectable = False
    log_any_thread = True

    def __init__(self, app: Any, sock: socket.socket, options: Mapping[str, Any]) -> None:
        super().__init__(app, sock, options)
        from granian._granian import SocketHolder
        from granian.constants import Interfaces, TaskImpl
        from granian.log import LogLevels
        from granian.server.embed import Server

        class BoundServer(Server):
            """granian's embedded server, listening on the socket bound for it."""

            def _init_shared_socket(self) -> None:
                self._ssp = None
                self._shd = SocketHolder(os.dup(sock.fileno()), False, 128)  # type: ignore[call-arg, assignment]  # granian's stub omits the constructor

        # Applied incrementally: granian's default configuration would print to stdout.
        quiet = {"version": 1, "incremental": True, "handlers": {}, "formatters": {},
                 "loggers": {name: {"propagate": False} for name in GRANIAN_LOGGERS}}
        self.server = BoundServer(
            app, address=HOST, port=sock.getsockname()[1],
            interface=Interfaces.ASGI if self.options.get("lifespan", True) else Interfaces.ASGINL,
            runtime_threads=1, task_impl=TaskImpl.asyncio, websockets=True, log_level=LogLevels.warning,
            log_dictconfig=quiet,
        )
        if self.options.get("shutdown_timeout") is not None:
            self.server.workers_kill_timeout = float(self.options["shutdown_timeout"])  # type: ignore[assignment]  # granian annotates int; it awaits a float as well
        self._up = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.server.on_startup(self._up.set)
        self.notes = [("granian: no pings (granian has none, granian #613), so a silent client is never noticed: "
                       "the silent way is not run")]

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.server.serve()

    def started(self) -> bool:
        return self._up.is_set() and bool(getattr(self.server, "wrks", True))

    def stop(self, force: bool) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.server.signal_handler_interrupt)


class DaphneRunner(ServerRunner):
    """daphne on Twisted's asyncio reactor, run by ``run_loop``; the app runs on the reactor's asyncio loop.

    The reactor runs once per process, so the checker always runs this agent in a process of its own, and the
    lab runs daphne in a subprocess. daphne runs no lifespan, and cancels an application still running
    ``application_close_timeout`` (10 s) after its client left: the checker's wait includes it.
    """

    name = "daphne"
    distribution = "daphne"
    added_wait = 10.0 + 2.0  # its application-close timeout, checked every 2 s or so
    cancels_after = 10.0  # application_close_timeout, below
    own_process = True
    on_ready: Callable[[], None] | None = None
    """Called on the reactor's thread once daphne listens."""

    def __init__(self, app: Any, sock: socket.socket, options: Mapping[str, Any]) -> None:
        super().__init__(app, sock, options)
        import daphne.server  # installs Twisted's asyncio reactor, with its loop, before anything else does

        close_timeout = self.options.get("application_close_timeout")
        if close_timeout is not None:
            self.added_wait = self.cancels_after = float(close_timeout)
            self.added_wait += 2.0
        self.loop = daphne.server.twisted_loop
        self._ready = False
        self._done: asyncio.Event | None = None
        self.server = daphne.server.Server(
            app, endpoints=[f"fd:fileno={sock.fileno()}"], signal_handlers=False,
            ping_interval=self.options.get("ping_interval") or 10**9,
            ping_timeout=self.options.get("ping_timeout") or 10**9,
            application_close_timeout=10 if close_timeout is None else close_timeout, verbosity=0,
            ready_callable=self._set_ready,
        )
        self.notes = ["daphne runs no lifespan (it has no lifespan support)"] if self.options.get("lifespan", True) \
            else []

    def _set_ready(self) -> None:
        self._ready = True
        if self.on_ready is not None:
            self.on_ready()

    def run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self.server.run()

    async def serve(self) -> None:
        self._done = asyncio.Event()
        await self._done.wait()

    def started(self) -> bool:
        return self._ready and self._done is not None

    def stop(self, force: bool) -> None:
        from twisted.internet import reactor

        if self._done is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self._done.set)
        reactor.callFromThread(self.server.kill_all_applications)


RUNNERS: dict[str, type[ServerRunner]] = {
    "uvicorn": UvicornRunner, "hypercorn": HypercornRunner, "granian": GranianRunner, "daphne": DaphneRunner,
}
"""Every server, by name: the one table of server adapters."""
SERVERS: tuple[str, ...] = tuple(RUNNERS)
"""The servers an app can be run on, each the name of the package it needs."""
