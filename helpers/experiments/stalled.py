"""A client that stops reading while the app sends a lot, measured: what ends the handler, and what stays.

Each measurement starts one worker (``helpers.stack.workers``) serving ``helpers.apps.heavy_sender``,
with nginx in front when the route is "nginx", and opens real ``websockets`` clients that stop
reading at once (``Client.hold_reading``: connected, reading nothing). Those clients keep a 64 KiB
receive buffer and negotiate no compression (``CLIENT_RCVBUF``); ``contrast()`` measures default
clients (permessage-deflate, the kernel's own buffer sizes), which the app's zeros never fill in the
watch. It records

* when the app's sends first stopped: the buffers between the app and the client are full, and
  each send waits for room;
* at the end of the watch: the handlers alive, how many of them wait in a send, the sends made in
  the watch's last second, how the others ended, the worker's TCP connections still open and the
  bytes in their kernel send queues, and the timeouts uvicorn (pings) and nginx (``send_timeout``)
  logged;
* then the clients read again: how many handlers and connections were left once the clients had
  read what was waiting for them.

Where nginx is missing, ``table()`` measures the direct rows and takes the nginx rows from a run
recorded with the lab. ``python -m helpers.experiments.stalled`` records them again.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from helpers import clients
from helpers.apps.heavy_sender import CHUNK, SEND_TIMEOUT
from helpers.errors import LabError
from helpers.experiments.recorded import MEASURED, Recording, write_recording
from helpers.stack import nginx
from helpers.stack.nginx import ROUTES as ROUTES  # notebook 11 reads stalled.ROUTES
from helpers.stack.nginx import Nginx, Route
from helpers.stack.sockets import WorkerSockets
from helpers.stack.workers import WORKER_SERVERS as WORKER_SERVERS  # notebook 11 reads stalled.WORKER_SERVERS
from helpers.stack.workers import Server, Worker
from helpers.tables import Table
from helpers.waiting import settled, wait_until, wait_while_moving

APP = "helpers.apps.heavy_sender:app"
RECORDED = Path(__file__).with_name("recorded_11.json")
CLIENT_RCVBUF = 64 * 1024
"""Each client's receive buffer, fixed (which also turns the client's compression off, ``helpers.clients``): the
server's send buffer still grows to a few MiB on loopback."""
LAST = 1.0
"""Seconds at the end of the watch in which the app's sends are counted: 0 means none was made."""
TEARDOWN = 0.5
"""Seconds a measured worker gets to exit after SIGTERM before SIGKILL: hypercorn would otherwise wait its
graceful timeout (3 s) for handlers that never end."""
START_TIMEOUT = 20.0
"""Seconds for the clients' handlers to start: generous, for a loaded classroom host."""
STALL = 15.0
"""Seconds without progress (a message received, a connection closed, a handler ended) after which
the clients' reading again is taken as done: on a loaded host they read the megabytes waiting for them slowly."""
LONGEST = 60.0
"""Seconds at most for each of those waits."""
POLL = 0.2
"""Seconds between two readings in the waits: six measurements poll at once, and each reading of the kernel's
socket table holds the GIL that the clients' loop needs to read."""


PING_TIMEOUT_LOG = "WebSocket keepalive ping timeout"
"""What uvicorn logs at trace level when a ping's timeout fires (``keepalive_timeout``)."""
NGINX_TIMEOUT_LOG = "client timed out"
"""What nginx logs (at info level) when ``send_timeout`` fires on a client's connection."""


@dataclass(frozen=True)
class Stalled:
    """``clients`` clients of ``path`` stopped reading: what the worker did, through ``route``."""

    server: str
    """The worker's server: uvicorn or hypercorn."""
    path: str
    """The endpoint measured (one of ``PATHS``)."""
    route: str
    """How the clients reached the worker: "direct" or through "nginx"."""
    clients: int
    ping: tuple[float, float] | None
    """The worker's ping interval and timeout (uvicorn); None: the worker sends no pings (hypercorn)."""
    send_timeout: float | None
    """nginx's ``send_timeout`` (route "nginx"); None: the clients were connected directly."""
    stalled_after: float | None
    """Seconds from the clients' holding until the app's sends first stopped (none for 0.2 s); None: never."""
    mib_per_client: float
    """What the app's sends that had returned by then carried to each client, on average."""
    cut_after: float | None
    """Seconds from the hold until the worker had no connection on its port left; None: not in the watch."""
    watched: float
    """Seconds from the hold to the readings below."""
    handlers: int
    sending: int
    """Handlers waiting in a send at the reading."""
    sends_last_second: int
    connections: int
    """The worker's TCP connections on its port still open at the reading (its clients', or nginx's)."""
    unsent_kib: int
    """What those connections' kernel send queues held at the reading, KiB (``/proc/net/tcp``'s tx_queue)."""
    ping_timeouts: int
    """Keepalive ping timeouts uvicorn had logged by the reading (0 for hypercorn, which sends no pings)."""
    nginx_timeouts: int
    """"client timed out" lines nginx had logged by the reading (its ``send_timeout`` firing); 0 direct."""
    close_codes: tuple[int, ...] = ()
    """The ``websocket.disconnect`` codes the app's receive was given (only a receiving handler gets one)."""
    endings: dict[str, int] = field(default_factory=dict)
    """How the handlers that ended by the reading ended: "returned" or an exception's name."""
    handlers_after_reading: int = 0
    """Handlers still running once the clients read again and had read what was waiting for them."""
    connections_after_reading: int = 0
    reading_again: str = ""
    """How the waits after the clients read again went (for a failing assert's message)."""
    client_rcvbuf: int | None = CLIENT_RCVBUF
    """The receive buffer the clients fixed, bytes; None: the kernel's own (autotuned) size."""
    compression: str = "none"
    """The compression the clients negotiated: "none", or the extension's name ("permessage-deflate")."""

    @property
    def outcome(self) -> str:
        if self.handlers == 0:
            return f"ended ({', '.join(f'{n} {how}' for how, n in sorted(self.endings.items()))})"
        doing = "blocked in send" if self.sending == self.handlers and self.sends_last_second == 0 else "sending"
        return f"{self.handlers} of {self.clients} alive, {doing}"


def _reading(worker: Worker, sockets: WorkerSockets, proxy: Nginx | None) -> dict[str, Any]:
    report = worker.report()
    return {**report, "connections": sockets.open(), "unsent": sockets.unsent(),
            "ping_timeouts": worker.output().count(PING_TIMEOUT_LOG),
            "nginx_timeouts": sum(NGINX_TIMEOUT_LOG in line for line in proxy.errors()) if proxy else 0}


PATHS = ("/ws/firehose", "/ws/firehose-bounded", "/ws/firehose-fixed")
"""The heavy sender's three endpoints (``helpers/apps/heavy_sender.py``): as is, with a timeout around each
send, and with that timeout and notebook 04's pattern."""
BOUNDED_PATHS = PATHS[1:]
"""The endpoints with a timeout around each send."""

def measure(server: Server, path: str, route: Route = "direct", *, n: int = 3, watch: float = 4.0,
            ping: tuple[float, float] = (0.5, 2.0), send_timeout: float = 0.5,
            rcvbuf: int | None = CLIENT_RCVBUF) -> Stalled:
    """``n`` clients of ``path`` on a fresh ``server`` worker stop reading at once; what happens.

    The readings are taken ``watch`` seconds after the clients stopped reading, and not before
    (at most 20 s later) nginx has closed its connections to the worker, uvicorn has logged a
    ping timeout for each connection, or a bounded endpoint's handlers have ended or sent again,
    where these may happen. ``ping``: uvicorn's interval and
    timeout (hypercorn sends no pings). ``rcvbuf``: the clients' receive buffer, which turns their
    compression off; None: default clients (permessage-deflate, the kernel's buffer sizes).
    """
    if route not in ("direct", "nginx"):
        raise LabError(f"route must be 'direct' or 'nginx', not {route!r}.")
    pings = ping if server == "uvicorn" else None
    interval, timeout = pings if pings is not None else (None, None)
    with Worker(APP, server, ping_interval=interval, ping_timeout=timeout, trace=pings is not None) as worker, \
            (Nginx([worker.port], send_timeout=send_timeout) if route == "nginx" else nullcontext()) as proxy:
        sockets = WorkerSockets(worker.port).now()
        # a set-up wait, like the handlers': the other setups' clients share this loop and each reads up to
        # 10 MiB/s until it holds, so on a loaded host the handshakes can wait their turn
        group = clients.connect(proxy.url(path) if proxy else worker.url(path), n, rcvbuf=rcvbuf,
                                timeout=START_TIMEOUT)
        negotiated = [extension.name for extension in group[0].connection.protocol.extensions]
        if proxy is None:  # connected directly: count the worker's connections to these clients only
            sockets = sockets.of_clients(frozenset(client.connection.local_address[1] for client in group))
        try:
            _all_started(worker, path, n)
            for client in group:
                client.hold_reading()
            held = time.monotonic()
            stalled = settled(lambda: (int((r := worker.report())["sends"]), int(r["sending"])), settle=0.2,
                              longest=watch)
            stalled_after = time.monotonic() - held if stalled[0] == worker.report()["sends"] else None
            cut = wait_until(lambda: sockets.open() == 0, timeout=20.0, interval=POLL) if proxy else None
            cut_after = None if cut is None else time.monotonic() - held
            if path in BOUNDED_PATHS:  # their own timeout ends them, unless they carry on sending (a zombie)
                wait_until(lambda: worker.handlers() == 0 or int(worker.report()["sends"]) > stalled[0] + n,
                           timeout=SEND_TIMEOUT + 20.0, interval=POLL)
            if pings is not None:  # a timeout for each connection, unless they ended first
                wait_until(lambda: worker.output().count(PING_TIMEOUT_LOG) >= n or worker.handlers() == 0
                           or sockets.open() == 0, timeout=20.0, interval=POLL)
            time.sleep(max(0.0, held + watch - LAST - time.monotonic()))
            before = int(worker.report()["sends"])
            time.sleep(LAST)
            reading = _reading(worker, sockets, proxy)
            watched = time.monotonic() - held
            for client in group:
                client.hold_reading(False)
            after = _after_reading_again(worker, sockets, group, reading)
        finally:
            clients.leave(group, "fin")
            worker.stop(timeout=TEARDOWN)  # measured: a handler still sending would hold its exit for seconds
        returned = stalled[0] - stalled[1]  # sends started, less those still waiting
        return Stalled(
            server, path, route, n, pings, send_timeout if proxy else None, stalled_after,
            round(returned * len(CHUNK) / n / 2**20, 1), cut_after, round(watched, 2), int(reading["handlers"]),
            int(reading["sending"]), int(reading["sends"]) - before, int(reading["connections"]),
            int(reading["unsent"]) // 1024, int(reading["ping_timeouts"]), int(reading["nginx_timeouts"]),
            tuple(reading["close_codes"]), dict(reading["endings"]), *after, rcvbuf,
            "+".join(negotiated) or "none",
        )


def _all_started(worker: Worker, path: str, n: int) -> None:
    """Wait until ``n`` handlers have started (20 s: handshakes are slow on a loaded classroom host)."""
    if wait_until(lambda: int(worker.report()["opened"]) >= n, timeout=START_TIMEOUT, interval=POLL) is None:
        raise LabError(f"Only {worker.report()['opened']} of {n} handlers of {path} on {worker.server} started "
                       f"within {START_TIMEOUT:g} s.")


def _after_reading_again(worker: Worker, sockets: WorkerSockets, group: clients.ClientGroup,
                         reading: dict[str, Any]) -> tuple[int, int, str]:
    """(handlers, connections) left once the clients, reading again, have read what was waiting for them, and how
    the waits went (``Stalled.reading_again``).

    Events, not a time: the connections the reading found being closed (a ping timeout logged, a handler ended,
    nginx's ``send_timeout``) are waited for until their clients see the close, the others until the clients
    have received every message the app's sends had handed over by the reading; then until every connection
    whose client saw its close has left the worker, and its handler with it (a handler that already had no
    connection at the reading is not waited for: the clients cannot reach it). Each wait lasts while the clients
    receive or something closes or ends, and gives up after ``STALL`` seconds without either (``LONGEST`` in
    all); then the count stops changing."""
    n = len(group)
    closing = min(n, int(reading["ping_timeouts"]) + int(reading["ended"]) + int(reading["nginx_timeouts"]))
    unreachable = max(0, int(reading["handlers"]) - int(reading["connections"]))
    # sends that had returned by the reading (an ended handler's last one may have been cut short)
    handed_over = int(reading["sends"]) - int(reading["sending"]) - int(reading["ended"])

    def closed() -> int:
        return sum(c.close_code is not None for c in group)

    def progress() -> tuple[int, int, int]:  # a message received, a close seen, a handler ended
        return group.received(), closed(), worker.handlers()

    def caught_up() -> bool:
        return closed() >= closing and (closed() == n or group.received() >= handed_over)

    seen = wait_while_moving(caught_up, progress, stall=STALL, longest=LONGEST, interval=POLL)
    restarted = ""
    if seen is None:  # the clients stopped reading (seen in CI, not understood): new readers, and a second wait
        died = sum(client.restart_reading() for client in group)
        seen = wait_while_moving(caught_up, progress, stall=STALL, longest=LONGEST, interval=POLL)
        restarted = f" (after restarting the readers, {died} of which had died)"
    seen_closed, seen_received = closed(), group.received()
    left = wait_while_moving(lambda: sockets.open() <= n - closed() and worker.handlers() <= n - closed() + unreachable,
                             progress, stall=STALL, longest=LONGEST, interval=POLL)
    handlers, connections = settled(lambda: (worker.handlers(), sockets.open()), settle=0.3, longest=3.0)
    how = (f"{_waited(seen)}{restarted} until {seen_closed} of {n} clients saw a close ({closing} expected) and they "
           f"had {seen_received} of {handed_over} messages; {_waited(left)} for the worker's side")
    return handlers, connections, how


def _waited(seconds: float | None) -> str:
    return (f"gave up ({STALL:g} s without progress, or {LONGEST:g} s in all)" if seconds is None
            else f"{seconds:.1f} s")


CONTRAST_PATH = "/ws/firehose"
"""The endpoint measured with default clients too (``contrast``)."""


def every_setup(servers: tuple[Server, ...] = WORKER_SERVERS, routes: tuple[Route, ...] = ROUTES, *,
                contrast: bool = False, **options: Any) -> list[Stalled]:
    """``measure`` for each of ``PATHS``, by each route, on each server: one thread per server and route;
    with ``contrast``, ``CONTRAST_PATH`` with default clients too, directly, in a thread per server."""

    def one_thread(setup: tuple[Server, Route | None]) -> list[Stalled]:
        server, route = setup
        if route is None:
            return [measure(server, CONTRAST_PATH, "direct", rcvbuf=None, **options)]
        return [measure(server, path, route, **options) for path in PATHS]

    setups: list[tuple[Server, Route | None]] = [(server, route) for server in servers for route in routes]
    setups += [(server, None) for server in servers] if contrast else []
    with ThreadPoolExecutor(max_workers=len(setups)) as pool:
        return [row for rows in pool.map(one_thread, setups) for row in rows]


def _settings(watch: float, ping: tuple[float, float], send_timeout: float) -> dict[str, Any]:
    return {"watch": watch, "ping": list(ping), "send_timeout": send_timeout}


def table(*, watch: float = 4.0, ping: tuple[float, float] = (0.5, 2.0),
          send_timeout: float = 0.5) -> tuple[list[Stalled], dict[str, str]]:
    """Every setup on both servers, and where each route's rows come from.

    Where nginx is not installed, the direct rows are still measured here, and the nginx rows are
    the ones recorded with the lab (``recorded_11.json``), labelled as such.
    """
    options: dict[str, Any] = {"watch": watch, "ping": ping, "send_timeout": send_timeout}
    if nginx.available():
        return every_setup(contrast=True, **options), dict.fromkeys(ROUTES, MEASURED)
    recording = Recording(RECORDED)
    if recording.settings != _settings(**options):
        raise LabError(f"The recorded results were made with {recording.settings}, not {_settings(**options)}.")
    recorded_rows = [Stalled(**{**row, "ping": tuple(row["ping"]) if row["ping"] else None,
                                "close_codes": tuple(row["close_codes"])})
                     for row in recording.results["stalled"] if row["route"] == "nginx"]
    measured = every_setup(routes=("direct",), contrast=True, **options)
    return measured + recorded_rows, {"direct": MEASURED, "nginx": recording.label}


def record(path: Path = RECORDED) -> None:
    """Measure every setup with the notebook's settings, and write the rows with the date and versions."""
    settings = _settings(4.0, (0.5, 2.0), 0.5)
    rows = every_setup(watch=4.0, ping=(0.5, 2.0), send_timeout=0.5)
    write_recording(path, settings, {"stalled": [asdict(row) for row in rows]})


# The notebook's tables: one row per setup, short cells.

def _stopped(row: Stalled) -> str:
    if row.handlers and row.sends_last_second:
        return f"no: {row.sends_last_second} sends in the last second"
    if row.stalled_after is None:
        return "not in the watch"
    return f"after {row.stalled_after:.1f} s ({row.mib_per_client} MiB each)"


def _client(row: Stalled) -> str:
    buffer = "kernel's own buffer" if row.client_rcvbuf is None else f"{row.client_rcvbuf // 1024} KiB buffer"
    return f"{row.compression}, {buffer}"


def as_table(rows: list[Stalled], caption: str = "", *, client: bool = False) -> Table:
    """The rows as a table: what the sends did, what the reading found, what was left after reading again."""
    columns = ["server", "endpoint", "route", *(["client: compression, receive buffer"] if client else []),
               "sends stopped", "handlers at the reading", "worker connections (unsent)",
               "timeouts logged (ping, nginx)", "disconnect codes received", "after reading again"]
    return Table(columns, [
        (row.server, row.path, row.route, *([_client(row)] if client else []), _stopped(row), row.outcome,
         f"{row.connections} ({row.unsent_kib} KiB)", f"{row.ping_timeouts}, {row.nginx_timeouts}",
         ", ".join(map(str, row.close_codes)) or "none",
         f"{row.handlers_after_reading} handlers, {row.connections_after_reading} connections")
        for row in rows], caption)


if __name__ == "__main__":
    record()
    print(f"recorded notebook 11's measurements in {RECORDED} ({Recording(RECORDED).label})")
