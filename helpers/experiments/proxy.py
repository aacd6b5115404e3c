"""nginx in front of a worker, measured: what reaches the app when a client leaves, and whom nginx cuts.

Both experiments run on a stack started with ``tap=True`` (one worker, nginx in front, a tap on
each path to the worker: ``helpers.stack.tap``), with real ``websockets`` clients
(``helpers.clients``).

* ``measure_leaving``: clients of one endpoint leave in one way, directly or through nginx; the
  tap records how their TCP connections reached the worker (FIN or RST), the worker's reporter
  the close codes the app received and when the handlers ended.
* ``measure_read_timeout``: through nginx, three zombies of the article's loop (left clean, FIN,
  RST), one healthy idle client, one healthy client that sends a heartbeat to an endpoint that
  echoes it, and one that sends the same heartbeat to an endpoint that neither receives nor sends;
  the lab watches until nginx has cut the idle one and for two more proxy timeouts after that.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from helpers import clients
from helpers.clients import Leave
from helpers.errors import LabError
from helpers.stack import owner
from helpers.stack.nginx import ROUTES as ROUTES  # notebook 10 reads proxy.ROUTES
from helpers.stack.nginx import Route
from helpers.stack.owner import Stack
from helpers.stack.workers import Server
from helpers.tables import Table
from helpers.waiting import wait_until

APP = "helpers.apps.production:app"
COMPARED_WAYS: tuple[Leave, ...] = ("clean", "fin", "rst")
"""The ways of leaving notebook 10 compares, direct and through nginx (a silent or slow client sends nothing to
compare: notebook 11 measures what a client that stops reading does)."""


@dataclass(frozen=True)
class Leaving:
    """Clients of ``path`` that left in one way, by one route: what the worker saw."""

    server: str
    path: str
    route: str
    way: str
    clients: int
    backend_saw: tuple[str, ...]
    """How each TCP connection reached the worker ended (the tap's record): "FIN" or "RST"."""
    app_codes: tuple[int, ...]
    """The ``websocket.disconnect`` codes the app's receive was given."""
    ended_after: float | None
    """Seconds from the clients' leaving until the worker ran none of their handlers; None: some still ran."""
    still_running: int
    waited: float

    @property
    def lifetime(self) -> str:
        if self.ended_after is None:
            return f"{self.still_running} of {self.clients} still running at +{self.waited:g} s"
        return f"all ended {self.ended_after:.3f} s after leaving"


def _stack_server(lab: Stack) -> str:
    if not lab.taps or lab.nginx is None:
        raise LabError("These measurements need a stack started with nginx and tap=True: "
                       "stack.start(app, ['uvicorn'], tap=True).")
    return lab.workers[0].server


def measure_leaving(lab: Stack, path: str, way: Leave, route: Route, *, n: int = 3, give_up: float = 2.0) -> Leaving:
    """``n`` clients connect to ``path`` by ``route``, then leave in ``way``; the worker's view of it."""
    server = _stack_server(lab)
    worker, tap = lab.workers[0], lab.taps[route]
    url = lab.url(path) if route == "nginx" else lab.direct_url(path)
    base, codes_before, ends_before = worker.handlers(), len(worker.report()["close_codes"]), len(tap.ends())
    group = clients.connect(url, n)
    if wait_until(lambda: worker.handlers() == base + n, timeout=10.0) is None:
        raise LabError(f"{path} on {server} did not run {n} more handlers.")
    clients.leave(group, way)
    ended_after = wait_until(lambda: worker.handlers() == base, timeout=give_up)
    wait_until(lambda: len(tap.ends()) >= ends_before + n, timeout=give_up)
    report = worker.report()
    return Leaving(server, path, route, way, n, tuple(tap.ends()[ends_before:]),
                   tuple(report["close_codes"][codes_before:]), ended_after,
                   int(report["handlers"]) - base, give_up)


@dataclass(frozen=True)
class ReadTimeout:
    """Five clients through nginx with a short ``proxy_read_timeout``: who nginx cut, and who stayed."""

    server: str
    proxy_read_timeout: float
    heartbeat: float
    idle_cut_after: float | None
    """Seconds from connecting until the healthy idle client's connection ended; None: never, in the watch."""
    idle_close_code: int | None
    """What the idle client's library reports: 1006 means the TCP connection ended with no close frame."""
    heartbeat_open: bool
    heartbeat_close_code: int | None
    watched_after_cut: float
    zombies_left: int
    zombie_connections: tuple[str, ...]
    """How nginx's connections to the worker for the zombies' clients ended (the tap's record)."""
    zombies_running: int
    """Handlers of the article's loop still running at the end of the watch (their clients left at the start)."""
    sends_during_watch: int
    """What the worker's app sent meanwhile: the zombies' messages, going nowhere, and the heartbeat's echoes."""
    heartbeats_during_watch: int
    """Heartbeats each heartbeat client sent meanwhile (the echo endpoint answers each one)."""
    one_way_open: bool
    """Whether the client heartbeating to an endpoint that never receives nor sends was still open."""
    one_way_received: int
    """Messages that client received: 0 means only its own heartbeats crossed its connection."""


def measure_read_timeout(lab: Stack, *, heartbeat: float = 0.5, zombie_path: str = "/ws/metrics",
                         echo_path: str = "/ws/echo", one_way_path: str = "/ws/prices",
                         watch_for: float = 2.0) -> ReadTimeout:
    """Through nginx: 3 zombies (they leave clean, FIN, RST), an idle client and two heartbeat clients.

    One heartbeat client talks to ``echo_path``, which echoes; the other to ``one_way_path``, which
    neither receives nor sends (nothing is published to it).

    The watch lasts until the idle client is cut (at most 5 proxy timeouts), then ``watch_for``
    proxy timeouts more. ``lab`` must watch the zombie's function (``watch=["metrics"]``).
    """
    server = _stack_server(lab)
    assert lab.nginx is not None
    timeout = float(lab.nginx.settings["proxy_read_timeout"])
    worker, tap = lab.workers[0], lab.taps["nginx"]
    zombies = clients.connect(lab.url(zombie_path), 3)
    one_way = clients.connect(lab.url(one_way_path), 1)[0]
    idle, beating = clients.connect(lab.url(echo_path), 2)
    connected = time.monotonic()
    stop = threading.Event()
    beats = [0]

    def beat() -> None:
        while not stop.wait(heartbeat):
            still_open = [client for client in (beating, one_way) if client.close_code is None]
            if not still_open:
                return
            for client in still_open:
                client.send_text("heartbeat")
            beats[0] += 1

    beater = threading.Thread(target=beat, name="lab-heartbeat", daemon=True)
    beater.start()
    try:
        for zombie, way in zip(zombies, ("clean", "fin", "rst"), strict=True):
            clients.leave(zombie, way)  # type: ignore[arg-type]
        wait_until(lambda: len(tap.ends()) >= 3, timeout=20.0)  # at once, but late on a loaded host
        zombie_ends = tuple(tap.ends()[:3])
        wait_until(lambda: idle.closed_at is not None, timeout=5 * timeout)
        idle_cut_after = None if idle.closed_at is None else idle.closed_at - connected
        beats_before = beats[0]  # before the worker's count: a heartbeat sent in between is counted in both
        sends_before = int(worker.report()["sends"])
        time.sleep(watch_for * timeout)
        report = worker.report()
        beats_during = beats[0] - beats_before
    finally:
        stop.set()
        beater.join(5.0)
    function = zombie_path.rsplit("/", 1)[-1]
    running = int(report["alive"].get(function, -1))
    code = None if idle.close_code is None else int(idle.close_code)
    beating_code = None if beating.close_code is None else int(beating.close_code)
    result = ReadTimeout(server, timeout, heartbeat, idle_cut_after, code, beating_code is None, beating_code,
                         watch_for * timeout, 3, zombie_ends, running, int(report["sends"]) - sends_before,
                         beats_during, one_way.close_code is None, one_way.received)
    clients.leave([idle, beating, one_way], "fin")
    return result


def every_way(server: Server, *, proxy_read_timeout: float) -> list[Leaving]:
    """On a fresh stack of one ``server`` worker: 3 clients of ``/ws/echo`` per way of leaving and route."""
    lab = owner.start(APP, [server], tap=True, proxy_read_timeout=proxy_read_timeout)
    try:
        return [measure_leaving(lab, "/ws/echo", way, route) for route in ROUTES for way in COMPARED_WAYS]
    finally:
        lab.stop()


def read_timeout(server: Server, *, proxy_read_timeout: float, heartbeat: float) -> ReadTimeout:
    """On a fresh stack of one ``server`` worker behind nginx: ``measure_read_timeout``."""
    lab = owner.start(APP, [server], tap=True, watch=["metrics"], proxy_read_timeout=proxy_read_timeout)
    try:
        return measure_read_timeout(lab, heartbeat=heartbeat)
    finally:
        lab.stop()


# The notebook's tables.

def leaving_table(rows: list[Leaving], caption: str = "") -> Table:
    """One row per server, route and way of leaving: what reached the worker, and what the app was told."""
    return Table(("server", "route", "the client left", "reached the worker as", "the app's receive got",
                  "handlers"),
                 [(r.server, r.route, r.way, "+".join(sorted(set(r.backend_saw))),
                   ", ".join(map(str, sorted(set(r.app_codes)))), r.lifetime) for r in rows], caption)


def read_timeout_table(cuts: list[ReadTimeout], caption: str = "") -> Table:
    """One column per server, one row per client of the watch."""
    def idle(t: ReadTimeout) -> str:
        if t.idle_cut_after is None:
            return "not cut"
        return f"cut {t.idle_cut_after:.2f} s after connecting (code {t.idle_close_code})"

    def beating(t: ReadTimeout) -> str:
        return "open" if t.heartbeat_open else f"closed ({t.heartbeat_close_code})"

    facts = [
        ("idle client of /ws/echo", idle),
        ("heartbeat client of /ws/echo", beating),
        ("heartbeat client of /ws/prices", lambda t: ("open" if t.one_way_open else "closed")
                                                     + f", received {t.one_way_received} messages"),
        ("zombies' connections to the worker ended by", lambda t: "+".join(sorted(set(t.zombie_connections)))),
        ("zombies still running after the watch", lambda t: f"{t.zombies_running} of {t.zombies_left}"),
        ("the app's sends during the watch", lambda t: f"{t.sends_during_watch} (for {t.heartbeats_during_watch} "
                                                       "heartbeats)"),
    ]
    return Table(("", *(t.server for t in cuts)), [(label, *(show(t) for t in cuts)) for label, show in facts],
                 caption)
