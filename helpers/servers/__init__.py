"""Real ASGI servers for the lab: uvicorn, hypercorn and granian in the kernel's process, daphne beside it.

``serve(app, server=...)`` starts one on 127.0.0.1 (port 0: a free port, read back) and
replaces the lab server already running, whatever its kind: re-running a cell or a whole
notebook never leaves a server, a thread, a subprocess or a port behind.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Literal, get_args

from helpers.errors import LabError
from helpers.routes import ASGIApp, load_app
from helpers.servers.base import DEFAULT, HOST, LabServer, Seconds, StopReport, seconds_or_default
from helpers.servers.uvicorn import BACKENDS, Backend, check_backend

__all__ = [
    "BACKENDS", "DEFAULT", "HOST", "SERVERS", "Backend", "LabServer", "ServerName", "StopReport",
    "current", "serve", "stop_current",
]

ServerName = Literal["uvicorn", "hypercorn", "granian", "daphne"]
SERVERS: tuple[ServerName, ...] = get_args(ServerName)
"""The servers the lab runs, each the name of the package it needs (the checker's own list,
``ws_leakcheck.servers.SERVERS``, is the same: tests/servers/test_servers.py checks it)."""

SERVER_CLASSES: dict[ServerName, str] = {
    "uvicorn": "helpers.servers.uvicorn:UvicornServer",
    "hypercorn": "helpers.servers.hypercorn:HypercornServer",
    "granian": "helpers.servers.granian:GranianServer",
    "daphne": "helpers.servers.daphne:DaphneServer",
}
"""Each server's adapter, imported when that server is first served (as uvicorn lists its own in ``WS_PROTOCOLS``)."""
OWN_SETTINGS: dict[str, ServerName] = {"ws": "uvicorn", "application_close_timeout": "daphne"}
"""The settings of ``serve()`` that one server alone has (the others refuse them)."""

_current: LabServer | None = None


def _check_server(server: str) -> None:
    if server not in SERVERS:
        raise LabError(f"Unknown server {server!r}; choose one of {', '.join(SERVERS)}.")
    if importlib.util.find_spec(server) is None:
        raise LabError(f"The {server!r} server needs the {server!r} package, which is not installed.")


def serve(
    app: ASGIApp | str,
    *,
    server: ServerName = "uvicorn",
    ws: Backend = "websockets-sansio",
    ping_interval: Seconds = DEFAULT,
    ping_timeout: Seconds = DEFAULT,
    shutdown_timeout: float = 1.0,
    port: int = 0,
    lifespan: bool = False,
    application_close_timeout: float | None = None,
) -> LabServer:
    """Start ``app`` on ``server``, on 127.0.0.1 (port 0: a free port), replacing the lab server already running.

    ``ping_interval``/``ping_timeout``: the server's WebSocket keepalive, in seconds; left out,
    each server keeps its own default (``server.keepalive_defaults``: uvicorn 20/20, hypercorn
    none, granian none, daphne 20/30); ``None`` turns pings off where the server can. A setting
    the server does not have is refused in one sentence (granian has no pings; hypercorn no ping
    timeout; daphne cannot turn pings off). ``ws`` picks uvicorn's WebSocket backend.
    ``shutdown_timeout`` bounds how long ``stop()`` waits for handlers before cancelling them.
    ``lifespan=True`` runs the app's lifespan; off by default, so that re-serving an app never
    repeats its start-up work. ``application_close_timeout`` is daphne's (its default: 10 s).
    daphne runs in a subprocess, so it needs an importable app: ``"module:attribute"``, or an
    app object defined in an importable module.
    """
    global _current
    _check_server(server)
    if server == "uvicorn":
        check_backend(ws)
    elif ws != "websockets-sansio":
        raise LabError(f"ws={ws!r} picks one of uvicorn's WebSocket backends; {server} has its own.")
    if application_close_timeout is not None and server != "daphne":
        raise LabError(f"application_close_timeout is daphne's setting; {server} has none.")
    loaded = load_app(app)
    stop_current()
    _current = _start(server, app, loaded, ping_interval=ping_interval, ping_timeout=ping_timeout,
                      own={"ws": ws, "application_close_timeout": application_close_timeout},
                      shutdown_timeout=shutdown_timeout, port=port, lifespan=lifespan)
    return _current


def server_class(server: ServerName) -> type[LabServer]:
    """The lab's adapter for ``server`` (``SERVER_CLASSES``), imported now."""
    module, _, name = SERVER_CLASSES[server].partition(":")
    found: type[LabServer] = getattr(importlib.import_module(module), name)
    return found


def _start(server: ServerName, app: ASGIApp | str, loaded: ASGIApp, *, ping_interval: Seconds, ping_timeout: Seconds,
           own: dict[str, Any], **settings: Any) -> LabServer:
    cls = server_class(server)
    return cls.start(
        app, loaded,
        ping_interval=seconds_or_default("ping_interval", ping_interval, cls.keepalive_defaults["ping_interval"]),
        ping_timeout=seconds_or_default("ping_timeout", ping_timeout, cls.keepalive_defaults["ping_timeout"]),
        **settings, **{name: value for name, value in own.items() if OWN_SETTINGS[name] == server},
    )


def current() -> LabServer | None:
    """The lab server running now, if any."""
    return _current if _current is not None and _current.stop_report is None else None


def stop_current() -> StopReport | None:
    """Stop the running lab server, if any (and forget it, even if stopping is interrupted)."""
    global _current
    running, _current = _current, None
    return running.stop() if running is not None else None
