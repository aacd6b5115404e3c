"""What the checker found, one kind of evidence at a time, with the sentence and the hint that explain it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ws_leakcheck.verdict import (
    PERIODS,
    QUIET,
    retained,
    shutdown_leaked,
    way_at_once,
    way_cancelled_by_server,
    way_leaked,
)

WEBSOCKET_TYPE = "starlette.websockets.WebSocket"
CONNECTIONS = "connections to "
"""The prefix of a retained count that is the server process's network connections to one remote address."""
REDIS = "Redis "
"""The prefix of a retained count read from Redis itself (``--redis``): its subscriptions, its clients."""
REDIS_SUBSCRIPTIONS = REDIS + "subscriptions"
REDIS_CLIENTS = REDIS + "clients"
EXPLAIN: dict[str, str] = {
    "handlers": "handler coroutines: the endpoint's coroutine found in a task's await chain on the server's loop, "
    "after its client left; one that never ends holds its socket, its buffers and its CPU forever.",
    "tasks": "tasks: tasks the app started during the sessions (create_task, ensure_future) still pending after "
    "the clients left and their handlers ended.",
    "websockets": "WebSocket objects: Starlette WebSocket objects still reachable after garbage collection, "
    "beyond those held by handlers still running (a registry that keeps departed clients). The count is the "
    "growth from before the clients came; a live session holds {per_session} of them (FastAPI wraps the "
    "connection once for routing and once for the endpoint's parameter, Starlette once).",
    "retained": "retained state: what stays reachable after garbage collection, per departed session, over two "
    "rounds (n then 2n sessions): objects by type (the app's classes, asyncio's queues, tasks and events, "
    "WebSocket) and the sizes of the app's module-level sets, lists, dicts and deques.",
    "exceptions": "unhandled exceptions: what the server logged as an exception in the app, and asyncio's "
    "'Task exception was never retrieved', while the clients left.",
    "cpu": "CPU: milliseconds of CPU per second that the server's thread used after the clients left "
    "(an idle server uses a few, the checker's own questions included); high with nothing connected is a "
    "loop that keeps working for nobody.",
    "frozen": "frozen loop: the server's event loop stopped answering a heartbeat, checked from outside the "
    "loop: a handler runs without ever awaiting (a bare except around a receive, spinning).",
    "shutdown": "blocks shutdown: once the clients had left, the checker asked the server to shut down gracefully, "
    "as a deploy does (what its SIGINT/SIGTERM handler does), and it had not exited within the limit; every "
    "deploy, --reload and Ctrl-C waits as long (uvicorn, with no graceful timeout, waits for good).",
    "connections": "connections: the server process's own network connections (psutil), other than the "
    "checker's clients' and the listening socket, that grew per departed session over two rounds: a "
    "connection to Redis, a database or another service opened per visitor and never closed.",
    "redis": "Redis: what Redis itself holds (--redis), read before the clients came and after they left: "
    "subscriptions (PUBSUB NUMSUB of every channel, and PUBSUB NUMPAT) and clients (CLIENT LIST, without the "
    "checker's own connection), grown per departed session over two rounds: a subscription or a connection taken "
    "per visitor and never given back. Redis counts every process's: give the checker a Redis only the app uses.",
    "cancelled": "cancelled by the server: the handler was still running when the server's own close timeout "
    "(daphne's application_close_timeout) cancelled it; it never ended on its own, so it runs on wherever no such "
    "timeout exists (uvicorn, hypercorn, granian), and holds its resources until the timeout everywhere.",
    "at_once": "untested departure: the handler ended, or the server closed the connection, before the client "
    "left, so nothing could outlive the client: the code that runs per session was never reached.",
    "sends": "sends after the departure: websocket.send messages the handlers still passed to the server per "
    "second after their clients left (a zombie, alive and sending to nobody, which the server drops), and "
    "handlers blocked in a send that does not return (a peer that stopped reading: alive and stuck).",
}

HINTS: dict[str, str] = {
    "handlers": "Tie the handler's life to the connection: keep a receive running next to the sender "
    "(a task group; the pattern of ws-leak-lab's notebook 04, run_with_receiver), so the disconnect ends it.",
    "tasks": "A task started with create_task is not tied to its handler: cancel it in `finally`, or run it "
    "in a task group with the handler's receive.",
    "websockets": "Unregister the client in `finally`, not only in `except WebSocketDisconnect` "
    "(iter_text() ends quietly when the client leaves).",
    "retained": "Something is added per visitor and never removed: remove it in `finally` (a queue, an id, "
    "a dict entry), whichever way the client leaves.",
    "exceptions": "Catch the disconnect where the handler sends or receives (WebSocketDisconnect), or keep a "
    "receive running so the handler ends quietly.",
    "frozen": "A loop that retries a failed receive without awaiting anything spins forever: never catch "
    "everything around receive(); stop on WebSocketDisconnect.",
    "shutdown": "A handler that waits on something other than the connection keeps the server from stopping: "
    "keep a receive running next to it (a task group), so that the server's close at shutdown ends it.",
    "connections": "Close what the session opened (a pub/sub, a connection taken from a pool) in `finally`, "
    "whichever way the client leaves; without `finally` the library keeps it open.",
    "redis": "Give back what the session took from Redis in `finally` (await pubsub.unsubscribe(); await "
    "pubsub.aclose(); a connection taken from the pool), with a receive running beside the forwarder so that "
    "`finally` runs when the client leaves.",
    "sends": "A handler sending to nobody never learns its client left from a send on this server: keep a "
    "receive running beside it; one blocked in a send needs a timeout around the send (asyncio.timeout).",
    "at_once": "The handler ended (or was refused) before its clients left, so nothing could outlive them: a "
    "wrong first message or token, or an endpoint that closes by itself. Pass what it waits for (--send, --header, "
    "a query string, or the route's script in [tool.ws-leakcheck]) to reach the code that runs per session.",
    "cancelled": "Tie the handler's life to the connection (a receive running beside the sender, in a task "
    "group), so that it ends when its client leaves, not when the server gives up on it.",
}


@dataclass
class WayEvidence:
    """What one way of leaving (clean, FIN, RST, silent) left behind, and only that way."""

    way: str
    clients: int
    handlers_alive: int = 0
    """Handlers of this way that never ended within the wait."""
    tasks_alive: int = 0
    pending_tasks: list[str] = field(default_factory=list)
    """What each of those tasks runs (``serve in app/main.py:12, now in sleep``), for the report."""
    websockets_referenced: int = 0
    unhandled_exceptions: dict[str, int] = field(default_factory=dict)
    cpu_ms_per_s: float = 0.0
    settled_in_s: float = 0.0
    handlers_started: int = 0
    """Sessions opened (a handshake the server accepted)."""
    ended_at_once: int = 0
    """Sessions whose handler ended, or whose connection the server closed, before the client left."""
    ended_after_s: float | None = None
    """When the last handler or task of this way ended, after the clients left (None: none outlived them)."""
    waited_for_timers_s: float = 0.0
    """How long the wait was extended for a handler or task sleeping with a timer pending."""
    sleeping: int = 0
    """Of what never ended: how many sleep on a timer due after the cap (not ones that wake and sleep again)."""
    periodic: int = 0
    """Of what never ended: how many woke on a timer and went back to sleep (a loop that carries on)."""
    frozen: bool = False
    loop_lag_s: float = 0.0
    refused: str | None = None
    server_tasks_alive: int = 0
    skipped: str | None = None
    expected_s: float = 0.0
    """How long this way takes to be noticed at all (for a silent client: ping interval + timeout)."""
    sends_per_s: float | None = None
    """websocket.send messages per second that this way's handlers passed to the server after their clients
    left (None: not measured: a frozen loop, or no second poll within three seconds)."""
    blocked_in_send: int = 0
    """Of this way's handlers, how many were in a send that had not returned for half a second, at the end."""
    connections_left: dict[str, int] = field(default_factory=dict)
    """The server process's network connections (not the clients') opened during this way and still open after
    it, by remote address: a pool's first connections show here once, a per-visitor leak every time."""
    redis_while_connected: dict[str, int] = field(default_factory=dict)
    """With ``--redis``: how much more Redis held while this way's clients were connected than before they came, by
    kind ("subscriptions", "clients"): what the sessions took (empty: they never reached Redis)."""
    redis_left: dict[str, int] = field(default_factory=dict)
    """With ``--redis``: how much more Redis held after this way's clients left than before they came, by kind;
    what is back at its baseline is not listed."""
    websockets_per_session: float = 0.0
    """WebSocket objects each live session holds (measured while connected; FastAPI makes two per connection
    on its current versions: Starlette's in the route, and its own for the endpoint's parameter)."""
    server_close_codes: dict[int, int] = field(default_factory=dict)
    """Close code -> how many connections the server closed before their clients left (e.g. 1008 for a refused
    token or a wrong first message)."""
    cancelled_by_server: int = 0
    """Handlers of this way that ended cancelled (CancelledError) after their clients left: the server's doing."""
    server_cancels_after: float | None = None
    """The server's own close timeout, after which it cancels a handler still running (daphne: 10 s), or None."""
    periods_s: list[float] = field(default_factory=list)
    """Wake periods of the pollers that never ended (a timer that woke them again and again)."""
    exception_sites: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Exception name -> where its first one was raised in the app's code: ``where`` (file:line in function),
    ``line`` (the source line), ``during`` (the exception being handled then, e.g. WebSocketDisconnect)."""

    @property
    def leaked(self) -> bool:
        return way_leaked(self)

    @property
    def at_once(self) -> bool:
        return way_at_once(self)

    @property
    def noisy(self) -> bool:
        return bool(self.unhandled_exceptions)

    def sending(self) -> str:
        """Stuck or sending: what the handlers that never ended were doing, in one sentence."""
        rate = self.sends_per_s or 0.0
        if self.blocked_in_send:
            state = f"{self.blocked_in_send} blocked in a send that does not return (alive and stuck)"
            return state + (f", {rate:g} sends per second from the others" if rate else ", no sends meanwhile")
        if rate:
            return f"still sending after their clients left: {rate:g} sends per second to nobody (alive and sending)"
        return "no sends after their clients left (alive and waiting)"

    @property
    def untested(self) -> bool:
        return self.refused is not None or self.skipped is not None

    @property
    def ran(self) -> bool:
        return self.skipped is None

    def kinds(self) -> list[str]:
        """The kinds of evidence found (keys of EXPLAIN and HINTS)."""
        found = []
        for kind, present in (
            ("frozen", self.frozen), ("handlers", self.handlers_alive), ("tasks", self.tasks_alive),
            ("websockets", self.websockets_referenced), ("exceptions", self.unhandled_exceptions),
            ("sends", self.leaked and not self.frozen and (self.blocked_in_send or (self.sends_per_s or 0) > 0)),
        ):
            if present:
                found.append(kind)
        if way_cancelled_by_server(self):
            found.append("cancelled")
        if self.at_once or self.refused:
            found.append("at_once")
        return found

    def findings(self) -> list[str]:
        if self.skipped:
            return [f"not run: {self.skipped}"]
        if self.refused:
            return [f"every handshake was refused ({self.refused}): no handler ran"]
        found = []
        if self.frozen:
            found.append(f"the server's loop froze: no heartbeat for {self.loop_lag_s:.1f} s "
                         "(a handler that never yields)")
        if self.handlers_alive:
            sleeping = f", {self.sleeping} asleep on a timer due after the wait" if self.sleeping else ""
            if self.periodic:
                every = f" every {min(self.periods_s):.2g} s" if self.periods_s else ""
                sleeping += (f", {self.periodic} waking on a timer{every} and going back to sleep, watched for "
                             f"{PERIODS} of their own periods")
            found.append(f"{self.handlers_alive} of {self.clients} handler coroutines never ended (still running "
                         f"{self.settled_in_s:.1f} s after their clients left, nothing ending in the last "
                         f"{QUIET:g} s{sleeping})")
        if way_cancelled_by_server(self):
            found.append(f"{self.cancelled_by_server} of {self.clients} handler coroutines never ended on their own: "
                         f"the server cancelled them {self.ended_after_s:.1f} s after their clients left (its own "
                         f"close timeout, {self.server_cancels_after:g} s; daphne's application_close_timeout); "
                         "on a server without one they run on")
        if self.tasks_alive:
            running = f": {'; '.join(self.pending_tasks)}" if self.pending_tasks else ""
            found.append(f"{self.tasks_alive} task(s) started during the sessions still pending{running}")
        if self.websockets_referenced:
            found.append(f"{self.websockets_referenced} WebSocket object(s) still referenced after garbage collection")
        if self.leaked:
            found.append(f"server CPU meanwhile: {self.cpu_ms_per_s:.0f} ms per second")
        if self.handlers_alive and self.sends_per_s is not None:
            found.append(self.sending())
        if self.unhandled_exceptions:
            listed = ", ".join(f"{n} x {name}" for name, n in self.unhandled_exceptions.items())
            found.append(f"unhandled exceptions logged: {listed}")
            for name, site in self.exception_sites.items():
                during = f", while handling {site['during']}" if site.get("during") else ""
                line = f": {site['line']}" if site.get("line") else ""
                found.append(f"{name} raised at {site['where']}{during}{line}")
        if self.leaked and self.waited_for_timers_s >= 0.5 and not self.periodic:
            found.append(f"the wait extended {self.waited_for_timers_s:.1f} s for a timer due before the cap")
        if not self.leaked and self.ended_after_s is not None and self.ended_after_s >= self.expected_s + 0.5:
            timer = (f", the wait extended {self.waited_for_timers_s:.1f} s for a timer"
                     if self.waited_for_timers_s else "")
            found.append(f"slow, not stuck: everything ended after {self.ended_after_s:.1f} s{timer}")
        if self.connections_left:
            listed = ", ".join(f"{n} to {address}" for address, n in sorted(self.connections_left.items()))
            found.append(f"the server process kept connections it opened meanwhile: {listed}")
        if self.redis_left:
            departed = max(1, self.handlers_started or self.clients)
            listed = ", ".join(f"{kind} +{n} (+{round(n / departed, 2):g} per departed session)"
                               for kind, n in self.redis_left.items())
            found.append(f"Redis kept what these sessions opened: {listed}")
        if self.at_once:
            codes = ", ".join(f"{code} x {n}" for code, n in sorted(self.server_close_codes.items()))
            closed = f"; server close codes: {codes}" if codes else ""
            found.append(f"all {self.handlers_started} sessions ended before their clients left (the handler "
                         f"returned or closed at once{closed}): the departure was not tested")
        elif self.ended_at_once:
            found.append(f"note: {self.ended_at_once} of {self.handlers_started} sessions ended before their "
                         "clients left")
        return found


@dataclass
class Retention:
    """Growth of what stays reachable after gc, per departed session, over two rounds."""

    sessions: tuple[int, int] = (0, 0)
    rounds: tuple[str, str] = ("", "")
    """The ways of leaving of each round's sessions."""
    growth: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Name -> (growth in round 1, growth in round 2), for everything that grew."""
    skipped: str | None = None

    def per_session(self, name: str) -> float:
        first, second = self.growth[name]
        return (first + second) / max(1, sum(self.sessions))

    def retained(self) -> dict[str, float]:
        """What grows by at least RETAINED_PER_SESSION per session in both rounds: left per visitor."""
        return retained(self)

    @property
    def leaked(self) -> bool:
        return bool(self.retained())

    def kinds(self) -> list[str]:
        kept = self.retained()
        found = []
        if any(not name.startswith((CONNECTIONS, REDIS)) for name in kept):
            found.append("retained")
        if any(name.startswith(CONNECTIONS) for name in kept):
            found.append("connections")
        if any(name.startswith(REDIS) for name in kept):
            found.append("redis")
        return found

    def findings(self) -> list[str]:
        if self.skipped:
            return [f"not measured: {self.skipped}"]
        kept = self.retained()
        if not kept:
            return []
        listed = ", ".join(f"{name} +{slope:g}" for name, slope in sorted(kept.items(), key=lambda kv: -kv[1]))
        (n1, n2), (w1, w2) = self.sessions, self.rounds
        return [f"retained per departed session (rounds of {n1} {w1} then {n2} {w2} sessions): {listed}"]


@dataclass
class ShutdownEvidence:
    """The graceful shutdown after every check on a server: how long it took, or that it had not ended."""

    limit_s: float = 0.0
    seconds: float | None = None
    """Seconds from the request to shut down to the server's exit (its lifespan shutdown included); None: it had
    not exited within ``limit_s``."""
    logged: list[str] = field(default_factory=list)
    """What the server logged meanwhile (uvicorn: "Waiting for background tasks to complete. ...")."""
    handlers_alive: int = 0
    """This endpoint's handlers still running when the limit passed."""
    other_handlers: dict[str, int] = field(default_factory=dict)
    """Other endpoints' handlers (of the same run) still running then."""
    tasks_alive: int = 0
    """Tasks the app started (any endpoint's) still running then."""
    skipped: str | None = None
    failed: str | None = None

    @property
    def blocked(self) -> bool:
        return self.skipped is None and self.failed is None and self.seconds is None

    @property
    def leaked(self) -> bool:
        """It blocked, and this endpoint's handlers were running then (or nobody's: the app's tasks)."""
        return shutdown_leaked(self)

    def findings(self) -> list[str]:
        if self.skipped:
            return [f"not measured: {self.skipped}"]
        if self.failed:
            return [f"the server's shutdown failed after {self.seconds or 0:.1f} s: {self.failed}"]
        if self.seconds is not None:
            return [f"graceful shutdown: exited after {self.seconds:.2f} s"]
        if not self.leaked:  # one shutdown serves every path checked on the server: this one did not hold it
            others = ", ".join(f"{n} of {path}" for path, n in sorted(self.other_handlers.items()))
            return [(f"the server's graceful shutdown was held by other endpoints' handlers ({others}), not this "
                     "one's")]
        held = []
        if self.handlers_alive:
            held.append(f"{self.handlers_alive} handler(s) of this endpoint")
        held += [f"{n} handler(s) of {path}" for path, n in sorted(self.other_handlers.items())]
        if self.tasks_alive:
            held.append(f"{self.tasks_alive} task(s) the app started")
        line = f"blocks shutdown: did not exit within {self.limit_s:g} s of a graceful shutdown"
        if held:
            line += " (still running then: " + ", ".join(held) + ")"
        waiting = [entry for entry in self.logged if "wait" in entry.lower()]
        if waiting:
            line += f"; the server logged: {waiting[-1]!r}"
        return [line]


DISCONNECTS = ("WebSocketDisconnect", "ClientDisconnected", "ConnectionClosed", "ConnectionClosedError",
               "ConnectionClosedOK", "WebSocketDisconnected")


def exceptions_hint(ways: list[WayEvidence]) -> str:
    """The hint that fits where the app raised: inside an except block that handled the disconnect (the handler
    did catch it; what it did there raised), at a send or receive, or something else of the app's."""
    sites = {name: site for way in ways for name, site in way.exception_sites.items()}
    during = [(name, site) for name, site in sites.items() if site.get("during") in DISCONNECTS]
    if during:
        name, site = during[0]
        return (f"The handler did catch the disconnect: its except block raised {name} at {site['where']} (e.g. a "
                "broadcast to peers that left too). Guard what the except block does: catch the error of each send "
                "to another peer and drop that peer, or remove the departed client before broadcasting.")
    disconnects = [(name, site) for name, site in sites.items() if name in DISCONNECTS]
    if disconnects:
        name, site = disconnects[0]
        return (f"Catch {name} where the handler sends or receives ({site['where']}), or keep a receive running "
                "so the handler ends quietly.")
    if sites:
        name, site = next(iter(sites.items()))
        return (f"The departure made the app raise {name} at {site['where']}: handle it there, or end the session "
                "in `finally` without raising.")
    return HINTS["exceptions"]
