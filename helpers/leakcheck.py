"""Check a WebSocket endpoint for leaks: ``python -m helpers.leakcheck MODULE:APP PATH``.

The checker serves the app on 127.0.0.1 in this process (one server, as in production) and,
for each way a client can leave (clean, FIN, RST, silent) in turn, connects real clients,
lets them leave, waits for things to settle, and collects evidence of what outlived them,
counting only what that way added:

- handler coroutines of the route still running;
- tasks started during the sessions still pending (orphans included);
- Starlette ``WebSocket`` objects still referenced after garbage collection (registries);
- exceptions uvicorn logged as unhandled;
- CPU the server spent while no client was left (evidence only: an idle lab server spends
  a few ms per second, the checker's own sampling included).

Verdict: ``leak`` if anything outlived its client, ``noisy`` if nothing did but disconnects
produced unhandled exceptions, ``clean`` otherwise. Exit status 0 clean, 1 leak, 3 noisy,
2 usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.websockets import WebSocket

from helpers import clients as lab_clients
from helpers.clients import WAYS_OF_LEAVING
from helpers.errors import LabError
from helpers.probe import Probe
from helpers.routes import ASGIApp, load_app, websocket_route
from helpers.server import BACKENDS, Backend, LabServer, serve
from helpers.waiting import wait_until

WAYS = ("clean", "fin", "rst", "silent")
EXIT_CODES = {"clean": 0, "leak": 1, "noisy": 3}


@dataclass
class WayEvidence:
    way: str
    clients: int
    handlers_alive: int
    tasks_alive: int
    websockets_referenced: int
    unhandled_exceptions: dict[str, int]
    cpu_ms_per_s: float
    settled_in_s: float

    @property
    def leaked(self) -> bool:
        return self.handlers_alive > 0 or self.tasks_alive > 0 or self.websockets_referenced > 0

    @property
    def noisy(self) -> bool:
        return bool(self.unhandled_exceptions)

    def findings(self) -> list[str]:
        found = []
        if self.handlers_alive:
            found.append(f"{self.handlers_alive} of {self.clients} handler coroutines still running")
        if self.tasks_alive:
            found.append(f"{self.tasks_alive} task(s) started during the sessions still pending")
        if self.websockets_referenced:
            found.append(f"{self.websockets_referenced} WebSocket object(s) still referenced after garbage collection")
        if self.leaked:
            found.append(f"server CPU meanwhile: {self.cpu_ms_per_s:.0f} ms per second")
        if self.unhandled_exceptions:
            listed = ", ".join(f"{n} x {name}" for name, n in self.unhandled_exceptions.items())
            found.append(f"unhandled exceptions logged: {listed}")
        return found


@dataclass
class Report:
    app: str
    path: str
    endpoint: str
    options: dict[str, Any]
    ways: dict[str, WayEvidence] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        if any(w.leaked for w in self.ways.values()):
            return "leak"
        if any(w.noisy for w in self.ways.values()):
            return "noisy"
        return "clean"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "app": self.app,
            "path": self.path,
            "endpoint": self.endpoint,
            "options": self.options,
            "seconds": round(self.seconds, 2),
            "ways": {way: {**asdict(e), "leaked": e.leaked, "noisy": e.noisy} for way, e in self.ways.items()},
        }

    def summary(self) -> str:
        lines = [f"{self.endpoint}() at {self.path}: {self.verdict.upper()} (checked in {self.seconds:.1f} s)"]
        for way, evidence in self.ways.items():
            findings = evidence.findings()
            lines.append(f"  {way:<6} " + ("; ".join(findings) if findings else "nothing outlived the clients"))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


class _NeverRetrieved(logging.Handler):
    """Counts asyncio's "Task exception was never retrieved" reports instead of printing them."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        name = f"{type(error).__name__} in a task nobody awaited" if error else record.getMessage().splitlines()[0]
        self.counts[name] = self.counts.get(name, 0) + 1


@contextmanager
def _asyncio_reports() -> Iterator[_NeverRetrieved]:
    handler, logger = _NeverRetrieved(), logging.getLogger("asyncio")
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _websockets_alive() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, WebSocket))


def _check_way(server: LabServer, path: str, probe: Probe, way: str, n: int, settle: float) -> WayEvidence:
    """One way of leaving, on the running server; evidence is what this way added."""
    server.log.clear()
    handlers_before = probe.alive()["handler"]
    websockets_before = _websockets_alive()
    tasks_before = set(server.tasks())

    def handlers() -> int:
        return probe.alive()["handler"] - handlers_before

    def pending_new_tasks() -> int:
        return sum(1 for t in set(server.tasks()) - tasks_before if not t.done())

    group = lab_clients.connect(server.url(path), n)
    wait_until(lambda: handlers() >= n, 1.0, interval=0.05)
    time.sleep(0.1)
    lab_clients.leave(group, way)  # type: ignore[arg-type]
    left_at = time.monotonic()
    if way == "silent" and server.ping_interval is not None and server.ping_timeout is not None:
        settle += server.ping_interval + server.ping_timeout
    cpu_from = left_at + min(0.3, settle / 2)
    cpu_window: list[float] = []  # [cpu seconds, monotonic] at the start of the window

    def settled() -> bool:
        if not cpu_window and time.monotonic() >= cpu_from:
            cpu_window.extend([server.cpu_seconds(), time.monotonic()])
        return handlers() <= 0 and pending_new_tasks() == 0

    wait_until(settled, settle, interval=0.05)
    if not cpu_window:
        cpu_window.extend([server.cpu_seconds(), time.monotonic()])
    time.sleep(max(0.0, 0.1 - (time.monotonic() - cpu_window[1])))
    cpu_ms_per_s = 1000 * (server.cpu_seconds() - cpu_window[0]) / (time.monotonic() - cpu_window[1])
    settled_in = time.monotonic() - left_at
    alive, tasks = max(0, handlers()), pending_new_tasks()
    exceptions = dict(server.log.exception_types())
    server.log.clear()  # the records' tracebacks would keep WebSocket objects alive
    lab_clients.close_all()  # silent clients are still open: release them before the next way
    with _asyncio_reports() as reports:
        referenced = max(0, _websockets_alive() - websockets_before)
    for name, count in reports.counts.items():
        exceptions[name] = exceptions.get(name, 0) + count
    return WayEvidence(way, n, alive, tasks, referenced, exceptions, round(cpu_ms_per_s, 1), round(settled_in, 2))


def check(
    app: ASGIApp | str,
    path: str,
    *,
    clients: int = 5,
    settle: float = 1.0,
    ws: Backend = "websockets-sansio",
    ping_interval: float | None = 0.5,
    ping_timeout: float | None = 0.5,
    ways: tuple[str, ...] = WAYS,
) -> Report:
    """Drive clients through each way of leaving and report what outlived them."""
    started = time.monotonic()
    loaded = load_app(app)
    route = websocket_route(loaded, path.split("?", 1)[0])
    if "{" in path:
        raise LabError(f"Path {path!r} is a route template; give a concrete path, e.g. {route.path_format!r} with its parameters filled in.")
    for way in ways:
        if way not in WAYS_OF_LEAVING:
            raise LabError(f"Unknown way of leaving {way!r}; choose among {', '.join(WAYS)}.")
    if clients < 1:
        raise LabError(f"Number of clients must be at least 1, not {clients}.")
    endpoint = route.endpoint
    report = Report(
        app=app if isinstance(app, str) else getattr(app, "title", type(app).__name__),
        path=path,
        endpoint=getattr(endpoint, "__qualname__", repr(endpoint)),
        options={"clients": clients, "settle": settle, "ws": ws, "ping_interval": ping_interval, "ping_timeout": ping_timeout},
    )
    server = serve(loaded, ws=ws, ping_interval=ping_interval, ping_timeout=ping_timeout, shutdown_timeout=0.2)
    uvicorn_logger = logging.getLogger("uvicorn")
    propagate, uvicorn_logger.propagate = uvicorn_logger.propagate, False  # other handlers would keep tracebacks alive
    try:
        probe = Probe(server, {"handler": endpoint})
        for way in ways:
            report.ways[way] = _check_way(server, path, probe, way, clients, settle)
    finally:
        lab_clients.close_all()
        server.stop(force=True)
        uvicorn_logger.propagate = propagate
    report.seconds = time.monotonic() - started
    return report


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"leakcheck: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _optional_seconds(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else float(text)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m helpers.leakcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("app", help="the app, as MODULE:ATTRIBUTE (e.g. myproject.main:app)")
    parser.add_argument("path", help="a WebSocket path the app serves (e.g. /ws/prices)")
    parser.add_argument("--clients", type=int, default=5, help="clients per way of leaving (default 5)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to wait after they leave (default 1.0)")
    parser.add_argument("--ws", choices=list(BACKENDS), default="websockets-sansio", help="uvicorn WebSocket backend")
    parser.add_argument("--ping-interval", type=_optional_seconds, default=0.5, help="seconds, or 'none' (default 0.5)")
    parser.add_argument("--ping-timeout", type=_optional_seconds, default=0.5, help="seconds, or 'none' (default 0.5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    args = parser.parse_args(argv)
    sys.path.insert(0, "")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # what the app prints must not mix with the report
            report = check(
                args.app, args.path, clients=args.clients, settle=args.settle, ws=args.ws,
                ping_interval=args.ping_interval, ping_timeout=args.ping_timeout,
            )
    except LabError as error:
        print(f"leakcheck: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict()) if args.json else report.summary())
    return report.exit_code


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: it would garbage-collect the app's leaked tasks and let asyncio
    # print a "Task exception was never retrieved" report for each, after the verdict.
    os._exit(code)
