"""The workloads notebook 04 runs on each broken endpoint and on its fixed twin: identical, so the counts compare.

Each serves the app on uvicorn, drives real clients, and returns the run (``helpers.timeline.Timeline``) with what it
counted. The endpoints stay in the notebook; only the driving lives here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.websockets import WebSocket

from helpers.experiment import Experiment
from helpers.pattern import DROPPED_WITHIN
from helpers.servers import serve
from helpers.timeline import Timeline
from helpers.waiting import wait_while_moving

N = 10
"""Clients per workload."""
MESSAGES, SIZE = 30, 256 * 1024
"""What the speaker says in ``one_client_cannot_keep_up``: 30 messages of 256 KiB."""
SLOW_RCVBUF = 4096
"""The slow client's receive buffer, in bytes (it also negotiates no compression: ``helpers.clients.connect``)."""
CATCH_UP, CATCH_UP_STALL = 2.0, 0.5
"""``one_client_cannot_keep_up``: after the time asked, the slow client waits on until every reader has all MESSAGES,
or their count has not changed for CATCH_UP_STALL seconds (so at least that long unless they already have all: the
naive broadcast's slow client reads again about 0.5 s late), CATCH_UP seconds at most. A loaded host reads the
22.5 MiB (3 readers, 30 messages of 256 KiB) slower: at 2 s a run on one had heard 27 of 30, the machine's pace,
not the broadcast's."""

Watch = Mapping[str, Callable[..., Any]]


def leave_and_count(app: Any, path: str, watch: Watch, *, how: str = "clean", settle: float = 0.5,
                    gauges: Mapping[str, Callable[[], float]] | None = None, first_message: bool = False,
                    **serve_options: Any) -> tuple[Timeline, int]:
    """Connect N clients (with ``first_message``, wait until each has received one), let them leave ``how``,
    and count what is alive once uvicorn holds no connection: watched handlers plus the gauges (registries).
    The handlers get up to ``settle`` seconds to end."""
    server = serve(app, **serve_options)
    with Experiment(server, watch=watch, gauges=gauges, live=False) as ex:
        clients = ex.connect(path, N)
        if first_message:
            ex.wait_until(lambda: clients.received() >= N, timeout=10)
        ex.leave(clients, how)  # type: ignore[arg-type]
        ex.wait_until(lambda: server.connections() == 0, timeout=10)   # uvicorn has seen every client go

        def left_behind() -> int:
            return sum(ex.probe.alive().values()) + int(sum(read() for read in (gauges or {}).values()))
        ex.wait_until(lambda: left_behind() == 0, timeout=settle)
        counted = left_behind()
    return ex.run, counted


def hello_after_three_left(app: Any, path: str, registry: set[WebSocket] | list[WebSocket],
                           watch: Watch) -> tuple[Timeline, int]:
    """Three clients join and leave by RST, seven join after them, one of the seven says hello. Counts what
    is wrong afterwards: dead registry entries plus live clients who did not hear the hello."""
    server = serve(app)
    with Experiment(server, watch=watch, gauges={"registry": lambda: len(registry)}, live=False) as ex:
        early = ex.connect(path, 3)
        ex.wait_until(lambda: len(registry) == 3, timeout=10)
        late = ex.connect(path, N - 3)
        ex.wait_until(lambda: len(registry) >= N - 3 and server.connections() == N, timeout=10)
        ex.leave(early, "rst")
        ex.wait_until(lambda: server.connections() == N - 3, timeout=10)   # uvicorn has seen the three go
        before = [c.received for c in late]
        late[0].send_text("hello")
        ex.wait_until(lambda: all(c.received > b for c, b in zip(late, before, strict=True))
                      or server.connections() < N - 3, timeout=10)
        ex.wait(0.3)
        dead_entries = len(registry) - server.connections()
    unheard = sum(c.received == b for c, b in zip(late, before, strict=True))
    return ex.run, dead_entries + unheard


def two_leave_together(app: Any, registry: set[WebSocket] | list[WebSocket], watch: Watch) -> tuple[Timeline, int]:
    """Two clients of ``/ws/room/...`` leave by RST while the server's loop is busy (so it handles both
    departures together); counts the "left the chat" notices the eight others did not get."""
    server = serve(app)
    with Experiment(server, watch=watch, gauges={"members": lambda: len(registry)}, live=False) as ex:
        leavers = ex.connect("/ws/room/1", 2)
        ex.wait_until(lambda: len(registry) == 2, timeout=10)
        stayers = ex.connect("/ws/room/2", N - 2)
        ex.wait_until(lambda: len(registry) == N, timeout=10)
        before = [c.received for c in stayers]
        with ex.server_busy():                 # both departures reach the server together
            ex.leave(leavers, "rst")
        ex.wait_until(lambda: ex.probe.alive()["room"] == N - 2, timeout=10)
        ex.wait(0.3)
    lost_notices = sum(2 - (c.received - b) for c, b in zip(stayers, before, strict=True))
    return ex.run, lost_notices


def one_client_cannot_keep_up(app: Any, registry: set[WebSocket] | list[WebSocket], watch: Watch, *,
                              reads_again_after: float | None = None) -> tuple[Timeline, dict[str, Any]]:
    """In ``/ws/chat``, one client stops reading (``SLOW_RCVBUF``, no compression) while another says MESSAGES
    messages of SIZE. The slow client reads again ``reads_again_after`` seconds after the first message, then
    ``CATCH_UP_STALL`` to ``CATCH_UP`` seconds later, unless the readers have every message (see ``CATCH_UP``), or
    (None) half a second after its handler ended (waiting up to four times ``DROPPED_WITHIN``).

    The run's gauge ``heard`` is the fewest messages any of the three readers had. The result holds what
    was true when the slow client read again ("heard", "slow handler alive", "in registry", "ended after",
    "read again after": seconds after the first message),
    and afterwards ("close": its close code and reason, "handlers left", "connections")."""
    server = serve(app)
    readers: list[Any] = []

    def heard() -> float:
        return float(min((c.received for c in readers), default=0))

    gauges = {"registry": lambda: float(len(registry)), "heard": heard}
    with Experiment(server, watch=watch, gauges=gauges, live=False) as ex:
        slow = ex.connect("/ws/chat", 1, rcvbuf=SLOW_RCVBUF)[0]
        readers.extend(ex.connect("/ws/chat", 3))
        ex.wait_until(lambda: len(registry) == 4, timeout=10)
        slow.hold_reading()                          # connected, but it stops reading
        start = ex.mark("messages begin")
        for _ in range(MESSAGES):
            readers[0].send_text("x" * SIZE)
        ended_after = None
        if reads_again_after is None:                # wait for the slow client's handler to end
            ex.wait_until(lambda: ex.probe.alive()["chat"] == 3, timeout=4 * DROPPED_WITHIN)
            ended_after = ex.now - start.t
            ex.wait(0.5)
        else:
            ex.wait(start.t + reads_again_after - ex.now)
            latest = start.t + DROPPED_WITHIN - 1.5   # its handler cannot end before DROPPED_WITHIN after the start
            wait_while_moving(lambda: heard() >= MESSAGES, heard, stall=CATCH_UP_STALL,
                              longest=max(0.0, min(CATCH_UP, latest - ex.now)))
        result: dict[str, Any] = {"heard": int(heard()),
                                  "slow handler alive": ex.probe.alive()["chat"] - 3,
                                  "in registry": len(registry), "ended after": ended_after,
                                  "read again after": round(ex.now - start.t, 1)}
        slow.hold_reading(False)                     # it reads again
        ex.mark("it reads again")
        ex.wait_until(lambda: heard() >= MESSAGES
                      and (slow.close_code is not None or len(registry) == 4), timeout=10)
        ex.wait(0.2)
        code = slow.close_code
        result.update({"close": (None if code is None else int(code), slow.close_reason),
                       "handlers left": ex.probe.alive()["chat"], "connections": server.connections()})
    return ex.run, result


def healthy_client_after_one_message(app: Any, path: str) -> tuple[bool, int | None]:
    """With pings every 0.5 s (0.5 s to answer), a healthy client says one message, then only listens for
    1.8 s: (was it closed by the server?, its close code)."""
    server = serve(app, ping_interval=0.5, ping_timeout=0.5)
    with Experiment(server, watch={}, live=False) as ex:
        client = ex.connect(path, 1)[0]
        ex.wait(0.2)
        client.send_text("hello")
        ex.wait(1.8)
        code = client.close_code
        return client.closed_by_server, None if code is None else int(code)
