"""Driving a check: the agent serves the app, the lab's clients come and leave, and the checker waits.

For each way of leaving in turn (each starts once the previous one settled), clients connect,
send their script, leave, and the checker polls the agent until what they left behind has ended,
or has stopped ending:

- everything of this way ended: it is "slow, not stuck" if it took a while, never a leak;
- the count stopped falling and nothing alive sleeps with a timer due before the cap: what is left
  never ends;
- something sleeps with a timer due before the cap: the wait goes on until it wakes (once; a task
  that wakes and goes back to sleep is a loop that carries on);
- the loop stopped answering its heartbeat: the loop is frozen.

Then two rounds (n, then 2n sessions) measure what stays reachable per departed session.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ws_leakcheck import agent as agent_module
from ws_leakcheck import importer, wire
from ws_leakcheck.clients import CHECKED_WAYS, Clients
from ws_leakcheck.config import Script, parse_header
from ws_leakcheck.errors import CheckerFailed, UsageError
from ws_leakcheck.evidence import CONNECTIONS, REDIS, WEBSOCKET_TYPE, Retention, ShutdownEvidence, WayEvidence
from ws_leakcheck.loop import LoopThread
from ws_leakcheck.redisview import RedisStopped, RedisView, shown
from ws_leakcheck.report import Report, Results
from ws_leakcheck.servers import SERVERS
from ws_leakcheck.verdict import FROZEN_AFTER, Poll, Settle

POLL = 0.1
"""Seconds between two looks at the server while waiting (the decision itself is verdict.Settle's)."""
REPLY_WAIT = 0.5
"""After sending its script, each client waits up to this long for the app's first reply before leaving."""
OWN_PROCESS = ("daphne",)
"""Servers that run once per process (Twisted's reactor): their agent always runs in a process of its own."""


@dataclass(frozen=True)
class Options:
    """How the checker runs: how many clients leave in which ways, on which server and pings, and how long it
    waits for what they left behind to end. The defaults are the command line's."""

    clients: int = 5
    ways: tuple[str, ...] = CHECKED_WAYS
    ws: str = "auto"
    ping_interval: float | None = 0.5
    ping_timeout: float | None = 0.5
    max_wait: float = 10.0
    settle: float = 0.3
    """The least wait after the clients leave."""
    lifespan: bool = True
    script: Script = field(default_factory=Script)
    """Every path's client script, but for the paths in ``scripts``."""
    scripts: Mapping[str, Script] = field(default_factory=dict)
    """Path (without its query string) -> its own client script ([tool.ws-leakcheck] routes, flags applied)."""
    app_dir: str | None = None
    """A folder put first on the app's import path (as uvicorn's --app-dir), or None."""
    python: str | None = None
    """The interpreter that serves the app (None: this one, in this process for uvicorn, hypercorn and granian)."""
    python_source: str = ""
    """Why that interpreter (``--python``, the active virtual environment, ...), as the report says it."""
    rounds: bool = True
    shutdown_timeout: float | None = None
    """The server's own graceful timeout (uvicorn's timeout_graceful_shutdown, hypercorn's graceful_timeout,
    granian's workers_kill_timeout); None: the server's default, as a deploy runs it (uvicorn: none)."""
    shutdown_limit: float = 3.0
    """How long the checker waits for the server to exit after asking it to shut down gracefully."""
    redis: str | None = None
    """A Redis URL (redis://, rediss://, unix://): Redis's own subscriptions and clients are read before the clients
    connect and after they left; None: Redis is not read."""

    def script_for(self, path: str) -> Script:
        return self.scripts.get(path.partition("?")[0], self.script)

    def public(self) -> dict[str, Any]:
        return {
            "clients": self.clients, "ways": list(self.ways), "ws": self.ws, "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout, "max_wait": self.max_wait, "lifespan": self.lifespan,
            "send": list(self.script.send), "headers": [f"{k}: ***" for k, _ in self.script.headers],
            "subprotocols": list(self.script.subprotocols), "python": self.python or sys.executable,
            "scripted_paths": sorted(self.scripts),
            "python_source": self.python_source or ("this process" if self.python is None else "given"),
            "shutdown_limit": self.shutdown_limit, "redis": shown(self.redis) if self.redis else None,
        }


# Talking to the agent.


class InProcess:
    """The agent in this process (an app object, e.g. from a notebook)."""

    def __init__(self) -> None:
        self.agent = agent_module.Agent()
        self.pid: int | None = None
        self.port: int | None = None

    def request(self, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        return _answered(self.agent.handle(message))

    def close(self) -> None:
        self.agent.stop()


class Subprocess:
    """The agent in another interpreter (``--python``), speaking JSON lines."""

    def __init__(self, python: str) -> None:
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            raise UsageError(f"--python {python!r} is not an executable file.")
        self.stderr: list[str] = []
        self.pid: int | None = None
        self.port: int | None = None
        self.process = subprocess.Popen(
            [python, "-c", agent_module.RUN_BY_PATH, importer.PACKAGE_FOLDER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=os.getcwd(), env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.answers: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.process.stdout, self.answers.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self._keep), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line)
        sink(None)

    def _keep(self, line: str | None) -> None:
        if line is not None:
            self.stderr.append(line.rstrip())
            del self.stderr[:-40]

    def request(self, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(wire.encode(message))
            self.process.stdin.flush()
            line = self.answers.get(timeout=timeout)
        except (BrokenPipeError, queue.Empty) as error:
            raise CheckerFailed(f"the agent did not answer {message['op']!r} ({type(error).__name__}); "
                                f"{self._tail()}") from None
        if line is None:
            self.process.wait(2.0)
            raise CheckerFailed(f"the agent exited with status {self.process.returncode} during {message['op']!r}; "
                                f"{self._tail()}")
        return _answered(wire.decode(line))

    def _tail(self) -> str:
        time.sleep(0.1)
        last = [line for line in self.stderr if line.strip()][-3:]
        return "its last words: " + " | ".join(last) if last else "it printed nothing"

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(CheckerFailed, UsageError):
                self.request({"op": "stop"}, timeout=10.0)
        try:
            self.process.wait(3.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(3.0)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):  # the agent already exited: nothing left to flush to
                    stream.close()


def _answered(answer: dict[str, Any]) -> dict[str, Any]:
    if answer.get("error") == "usage":
        raise UsageError(answer["message"])
    if answer.get("error"):
        raise CheckerFailed(f"the agent failed: {answer.get('message')}")
    return answer


# The server process's own connections.


NO_PSUTIL = ("connections the server opened (to Redis, a database, another service) were not measured: psutil is "
             "not installed in this Python (pip install psutil)")


def _connections(link: Any) -> dict[str, int]:
    """The server process's network connections by remote address, the clients' and the listening socket's left
    out (by the server's port, at either end): what the app opened (Redis, a database, another service)."""
    pid, port = getattr(link, "pid", None), getattr(link, "port", None)
    if pid is None or port is None:
        return {}
    try:
        import psutil

        process = psutil.Process(pid)
        found = (getattr(process, "net_connections", None) or process.connections)(kind="inet")  # psutil < 6
    except Exception:  # noqa: BLE001 - psutil missing, or the process gone: this evidence is not available
        return {}
    counts: dict[str, int] = {}
    for conn in found:
        if not conn.raddr or conn.status == "LISTEN" or port in (conn.laddr.port, conn.raddr.port):
            continue
        key = f"{CONNECTIONS}{conn.raddr.ip}:{conn.raddr.port}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _redis(link: Any) -> dict[str, int]:
    """Redis's subscriptions and clients now (``--redis``), or nothing without it."""
    view: RedisView | None = getattr(link, "redis", None)
    if view is None:
        return {}
    try:
        return view.reading()
    except RedisStopped as error:
        raise CheckerFailed(str(error)) from None


def _retained_snapshot(link: Any) -> dict[str, Any]:
    # Connections first: the agent's gc.collect() would run the finalizers of unreachable clients (redis-py's
    # Connection.__del__ closes its socket), which a running server may not do for a long while.
    connections, redis = _connections(link), _redis(link)
    snap: dict[str, Any] = link.request({"op": "snapshot", "retained": True})
    snap["connections"] = connections
    snap["redis"] = redis
    return snap


def _sizes(snap: dict[str, Any]) -> dict[str, int]:
    return {**snap["retained"], **snap["containers"], **snap.get("connections", {}), **snap.get("redis", {})}


def _grown(end: dict[str, int], start: dict[str, int]) -> dict[str, int]:
    """What ``end`` counts above ``start``, by name (what is back at its baseline, or below, is left out)."""
    return {name: n - start.get(name, 0) for name, n in end.items() if n > start.get(name, 0)}


# One way of leaving.


def _entries(snap: dict[str, Any], path: str, before: set[int]) -> dict[int, Any]:
    return {e[0]: e for e in snap["handlers"][path] if e[0] not in before}


def _wait(link: Any, path: str, before: set[int], settle: Settle, least: float) -> dict[str, Any]:
    """Poll the agent until ``settle`` (verdict.Settle, the pure decision) says this batch's handlers and tasks
    ended or stopped ending; what the last poll saw, and the CPU and sends meanwhile."""
    left_at = time.monotonic()
    cpu_from: tuple[float, float] | None = None
    sends: list[tuple[float, int]] = []
    while True:
        snap = link.request({"op": "snapshot"})
        now = time.monotonic() - left_at
        if cpu_from is None and now >= min(0.3, least):
            cpu_from = (snap["cpu"], now)
        if cpu_from is not None:
            sends.append((now, snap["sends"][path][0]))
        handlers = _entries(snap, path, before)
        tasks = {e[0]: e for e in snap["app_tasks"]}
        server = {e[0]: e for e in snap["server_tasks"]}
        alive = {key: (entry[1], entry[2]) for key, entry in {**handlers, **tasks, **server}.items()}
        settled = settle.feed(Poll(now, alive, snap["loop_lag"]))
        if settled is not None:
            break
        time.sleep(POLL)
    own = set(handlers) | set(tasks)
    frozen = settled.outcome == "frozen"
    if not frozen and (handlers or tasks):
        _count_sends_on(link, path, sends, left_at)
    return {"snap": snap, "handlers": handlers, "tasks": tasks, "server": server, "frozen": frozen, "now": now,
            "ended_at": settled.ended_at, "extended": settled.extended, "cpu": _cpu(cpu_from, snap, now),
            "sleeping": len(settled.sleeping & own), "periodic": len(own & set(settled.periodic)),
            "periods": sorted({round(p, 2) for key, p in settled.periodic.items() if key in own}),
            "sends": None if frozen else _rate(sends)}


SENDS_SPAN = 0.3
"""Seconds the sends are counted over at least, when something of the clients' is still alive."""
SENDS_LONGEST = 3.0


def _count_sends_on(link: Any, path: str, sends: list[tuple[float, int]], left_at: float) -> None:
    """Poll on until the sends were counted over ``SENDS_SPAN``, for ``SENDS_LONGEST`` at most: on a loaded host two
    polls can be further apart than the whole wait, which left one sample and no rate (a CI run at 4595cfe)."""
    deadline = time.monotonic() + SENDS_LONGEST
    while (len(sends) < 2 or sends[-1][0] - sends[0][0] < SENDS_SPAN) and time.monotonic() < deadline:
        time.sleep(POLL)
        snap = link.request({"op": "snapshot"})
        sends.append((time.monotonic() - left_at, snap["sends"][path][0]))


def _rate(samples: list[tuple[float, int]], window: float = 1.0) -> float | None:
    """Sends per second over the last ``window`` seconds of the wait: what the handlers do now, not while the
    buffers were filling."""
    if len(samples) < 2:
        return None
    end, count = samples[-1]
    start = next(s for s in samples if s[0] >= end - window)
    if end - start[0] < 0.2:
        start = samples[0]
    if end - start[0] < 0.2:
        return None
    return round((count - start[1]) / (end - start[0]), 1)


def _cpu(start: tuple[float, float] | None, snap: dict[str, Any], now: float) -> float:
    if start is None or now - start[1] < 0.05:
        return 0.0
    cpu: float = snap["cpu"]
    return round(1000 * (cpu - start[0]) / (now - start[1]), 1)


SILENT_CLOSE_ALLOWANCE = 10.0
"""Seconds a server may take, after its ping timeout, to end a silent client's handler: it may wait its WebSocket
close timeout for a close frame the client never reads (websockets' default, 10 s, which uvicorn's ``websockets``
backend keeps: on uvicorn 0.34.3 with websockets 15.0.1 an echo handler ended 10.9 s after its client went silent,
0.1 s inside the cap without this allowance, and was called a leak on a loaded host)."""


def _cap(options: Options, way: str, added_wait: float) -> float:
    cap = options.max_wait + added_wait
    if way == "silent" and options.ping_interval is not None and options.ping_timeout is not None:
        cap += options.ping_interval + options.ping_timeout + SILENT_CLOSE_ALLOWANCE
    return cap


def _least(options: Options, way: str) -> float:
    if way == "silent" and options.ping_interval is not None and options.ping_timeout is not None:
        return options.settle + options.ping_interval + options.ping_timeout
    return options.settle


def _batch(link: Any, client_loop: LoopThread, url: str, path: str, n: int, options: Options, way: str,
           added_wait: float, start: dict[str, Any] | None = None,
           cancels_after: float | None = None) -> tuple[WayEvidence, dict[str, Any]]:
    """n clients connect, send their script, leave by ``way``; the evidence is this batch's own.

    ``start`` is a snapshot with retained counts taken after the previous batch settled, if any;
    the batch returns its own last such snapshot, for the next one."""
    link.request({"op": "mark"})  # the tasks alive and the exceptions raised before now are not this batch's
    if start is None:
        start = _retained_snapshot(link)
    before = {e[0] for e in start["handlers"][path]}
    evidence = WayEvidence(way=way, clients=n, expected_s=round(_least(options, way) - options.settle, 2))
    script = options.script_for(path)
    clients = Clients(client_loop, url, n, script)
    try:
        if clients.connected == 0:
            refusals = clients.refusals()
            evidence.refused = refusals[0] if refusals else "no connection"
            return evidence, start
        seen: set[int] = set()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            current = _entries(link.request({"op": "snapshot"}), path, before)
            seen |= set(current)
            if len(current) + clients.closed_by_server() >= clients.connected:
                break
            time.sleep(0.05)
        clients.send(script.send)
        if script.send:
            clients.await_replies(REPLY_WAIT)  # leave once the app answered the script, not before
        else:
            time.sleep(0.1)
        connected = link.request({"op": "snapshot", "retained": True})
        evidence.redis_while_connected = {key.removeprefix(REDIS): n
                                          for key, n in _grown(_redis(link), start.get("redis", {})).items()}
        current = _entries(connected, path, before)
        seen |= set(current)
        if current:
            grown = connected["retained"].get(WEBSOCKET_TYPE, 0) - start["retained"].get(WEBSOCKET_TYPE, 0)
            evidence.websockets_per_session = round(max(0, grown) / len(current), 2)
        evidence.handlers_started = max(len(seen), clients.connected)
        evidence.ended_at_once = max(len(seen - set(current)), clients.closed_by_server())
        evidence.server_close_codes = clients.close_codes()
        clients.leave(way)
        least = _least(options, way)
        # The server's own timeout starts when it notices the departure (for a silent client, at the ping timeout).
        server_wait = added_wait + (least - options.settle) + 1.0 if added_wait else 0.0
        if least > options.settle:
            # A silent client is noticed only when the server's ping timeout fires, which a loaded CPU delays:
            # wait up to twice the pings' own time before calling a handler that is still running stuck.
            server_wait = max(server_wait, 2 * least + 1.0)
        waited = _wait(link, path, before, Settle(_cap(options, way, added_wait), least, server_wait), least)
    finally:
        clients.release()
    snap = waited["snap"]
    evidence.frozen = waited["frozen"]
    evidence.loop_lag_s = snap["loop_lag"]
    evidence.handlers_alive = len(waited["handlers"])
    evidence.tasks_alive = len(waited["tasks"])
    evidence.pending_tasks = sorted(str(entry[3]) for entry in waited["tasks"].values())
    evidence.server_tasks_alive = len(waited["server"])
    evidence.sleeping = waited["sleeping"]
    evidence.periodic = waited["periodic"]
    evidence.periods_s = waited["periods"]
    evidence.cancelled_by_server = snap.get("cancelled", {}).get(path, 0)
    evidence.server_cancels_after = cancels_after
    evidence.cpu_ms_per_s = waited["cpu"]
    evidence.settled_in_s = round(waited["now"], 2)
    evidence.ended_after_s = None if waited["ended_at"] is None else round(waited["ended_at"], 2)
    evidence.waited_for_timers_s = round(waited["extended"], 2)
    evidence.sends_per_s = waited["sends"]
    evidence.blocked_in_send = snap["sends"][path][1]
    end: dict[str, Any] = snap
    if not evidence.frozen:
        leftover_alive = bool(waited["handlers"] or waited["tasks"])
        if way == "silent" or waited["handlers"] or waited["tasks"] or waited["server"]:
            _settle_released(link, path, before)
        end = _retained_snapshot(link)
        held = round(evidence.websockets_per_session * evidence.handlers_alive)  # held by handlers still running

        def referenced(snapshot: dict[str, Any]) -> int:
            now: int = snapshot["retained"].get(WEBSOCKET_TYPE, 0)
            before: int = start["retained"].get(WEBSOCKET_TYPE, 0)
            return max(0, now - before - held)

        for _ in range(2):  # a server may release its references a moment after the handler ended (daphne)
            if referenced(end) == 0:
                break
            time.sleep(0.5)
            end = _retained_snapshot(link)
        evidence.websockets_referenced = referenced(end)
        evidence.connections_left = {key.removeprefix(CONNECTIONS): n
                                     for key, n in _grown(end["connections"], start.get("connections", {})).items()}
        if not leftover_alive:  # Redis handles a departed client's close a moment after the handler closed it
            for _ in range(3):
                if not _grown(end["redis"], start.get("redis", {})):
                    break
                time.sleep(0.1)
                end["redis"] = _redis(link)
        evidence.redis_left = {key.removeprefix(REDIS): n
                               for key, n in _grown(end["redis"], start.get("redis", {})).items()}
        # What never ended dies when the checker resets its clients: those exceptions are not this way's.
        source = snap if leftover_alive else end
        evidence.unhandled_exceptions = dict(source["exceptions"])
        evidence.exception_sites = {name: where for name, where in source.get("exception_sites", {}).items()
                                    if name in evidence.unhandled_exceptions}
    else:
        evidence.unhandled_exceptions = dict(snap["exceptions"])
        evidence.exception_sites = dict(snap.get("exception_sites", {}))
    return evidence, end


def _settle_released(link: Any, path: str, before: set[int]) -> None:
    """Silent clients were reset on release: let what that ends, end, before the next way starts."""
    last, quiet_since = None, time.monotonic()
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        snap = link.request({"op": "snapshot"})
        if snap["loop_lag"] > FROZEN_AFTER:
            return
        ids = (frozenset(_entries(snap, path, before))
               | frozenset(e[0] for e in snap["app_tasks"] + snap["server_tasks"]))
        if ids != last:
            last, quiet_since = ids, time.monotonic()
        elif time.monotonic() - quiet_since >= 0.2:
            return
        time.sleep(0.05)


def _retention(link: Any, client_loop: LoopThread, url: str, path: str, options: Options, added_wait: float,
               start: dict[str, Any] | None) -> Retention:
    """Two rounds (n, then 2n sessions) of the first way: the growth of what stays reachable after gc."""
    n = options.clients
    way = options.ways[0]
    sizes: list[dict[str, int]] = []
    snap = start if start is not None else _retained_snapshot(link)
    sizes.append(_sizes(snap))
    for count in (n, 2 * n):
        evidence, snap = _batch(link, client_loop, url, path, count, options, way, added_wait, snap)
        if evidence.frozen or evidence.refused:
            return Retention(skipped="the rounds could not run ("
                             + ("the loop froze" if evidence.frozen else "refused") + ")")
        sizes.append(_sizes(snap))
    return Retention(sessions=(n, 2 * n), growth=_growth(sizes), rounds=(way.upper(), way.upper()))


def _growth(sizes: list[dict[str, int]]) -> dict[str, tuple[int, int]]:
    growth = {}
    for name in set(sizes[1]) | set(sizes[2]):
        first = sizes[1].get(name, 0) - sizes[0].get(name, 0)
        second = sizes[2].get(name, 0) - sizes[1].get(name, 0)
        if first > 0 or second > 0:
            growth[name] = (first, second)
    return growth


def _rounds_of_ways(ends: list[dict[str, Any]], options: Options) -> Retention:
    """The ways themselves as the two rounds: the second way (n sessions), then the rest (2n or more).

    The first way is the warm-up: a one-time cache fills there, and grows in neither round."""
    sizes = [_sizes(e) for e in (ends[0], ends[1], ends[-1])]
    n = options.clients
    names = [w.upper() for w in options.ways]
    return Retention(sessions=(n, n * (len(ends) - 2)), growth=_growth(sizes),
                     rounds=(names[1], "+".join(names[2:len(ends)])))


# The public entry points.


def _validate(options: Options, server: str) -> None:
    for way in options.ways:
        if way not in CHECKED_WAYS:
            raise UsageError(f"Unknown way of leaving {way!r}; choose among {', '.join(CHECKED_WAYS)}.")
    if options.clients < 1:
        raise UsageError(f"Number of clients must be at least 1, not {options.clients}.")
    if options.max_wait <= 0:
        raise UsageError(f"--max-wait must be a positive number of seconds, not {options.max_wait!r}.")
    if options.shutdown_limit <= 0:
        raise UsageError(f"--shutdown-limit must be a positive number of seconds, not {options.shutdown_limit!r}.")
    for name, value in (("ping_interval", options.ping_interval), ("ping_timeout", options.ping_timeout)):
        if value is not None and value <= 0:
            raise UsageError(f"{name} must be a positive number of seconds or None, not {value!r}.")
    if server not in SERVERS:
        raise UsageError(f"Unknown server {server!r}; choose among {', '.join(SERVERS)} or 'all'.")


def _installed(servers: Sequence[str], python: str | None) -> None:
    """A usage error naming the first server missing where the app is served."""
    modules = {"uvicorn": "uvicorn", "hypercorn": "hypercorn", "granian": "granian", "daphne": "daphne"}
    for server in servers:
        if python is None or os.path.realpath(python) == os.path.realpath(sys.executable):
            found = importlib.util.find_spec(modules[server]) is not None
        else:
            probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({modules[server]!r}) is None)"
            found = subprocess.run([python, "-c", probe], capture_output=True, timeout=30).returncode == 0
        if not found:
            raise UsageError(f"The {server} server is not installed in this Python ({python or sys.executable}): "
                             f"install it there, or choose the servers with --server.")


def run(
    app: Any,
    paths: Sequence[str] = (),
    *,
    all_paths: bool = False,
    servers: Sequence[str] = ("uvicorn",),
    options: Options = Options(),
) -> Results:
    """Check each path on each server; a usage error raises UsageError, the checker's own failure CheckerFailed."""
    started = time.monotonic()
    result = Results()
    if not paths and not all_paths:
        raise UsageError("Give at least one WebSocket path, or --all.")
    if isinstance(app, str) is False and options.python:
        raise UsageError("--python needs the app as 'module:attribute', to import it in that interpreter.")
    for server in servers:
        _validate(options, server)
    if len(servers) > 1:
        _installed(servers, options.python)  # before a first server's check runs, not after
    redis = RedisView(options.redis) if options.redis else None  # a Redis that cannot be read: a usage error
    client_loop = LoopThread("leakcheck-clients")
    try:
        for server in servers:
            result.reports += _run_server(app, list(paths), all_paths, server, options, client_loop, redis)
    finally:
        client_loop.stop()
        if redis is not None:
            redis.close()
    result.seconds = time.monotonic() - started
    return result


def _run_server(app: Any, paths: list[str], all_paths: bool, server: str, options: Options,
                client_loop: LoopThread, redis: RedisView | None = None) -> list[Report]:
    python = options.python or (sys.executable if server in OWN_PROCESS else None)
    if python is not None and not isinstance(app, str):
        raise UsageError(f"{server} runs in a process of its own: give the app as 'module:attribute' to import it "
                         "there.")
    link: Any = Subprocess(python) if python is not None else InProcess()
    link.redis = redis
    reports: list[Report] = []
    try:
        started = link.request({
            "op": "start", "app": app, "paths": paths, "all": all_paths, "server": server, "ws": options.ws,
            "ping_interval": options.ping_interval, "ping_timeout": options.ping_timeout,
            "lifespan": options.lifespan, "shutdown_timeout": options.shutdown_timeout, "app_dir": options.app_dir,
            "shutdown_limit": options.shutdown_limit,
        }, timeout=60.0)
        link.pid, link.port = started.get("pid"), started["port"]
        frozen = False
        for target in started["targets"]:
            t0 = time.monotonic()
            path = target["path"]
            url = f"ws://127.0.0.1:{started['port']}{options.script_for(path).url_path(path)}"
            report = Report(
                app=app if isinstance(app, str) else getattr(app, "title", None) or type(app).__name__,
                path=path, endpoint=target["endpoint"], options={**options.public(), "server": server},
                server=server, kind=target["kind"], versions=started["versions"],
            )
            if target["note"]:
                report.notes.append(target["note"])
            report.notes += started.get("notes", [])
            if importlib.util.find_spec("psutil") is None:
                report.notes.append(NO_PSUTIL)
            last: dict[str, Any] | None = None
            ends: list[dict[str, Any]] = []
            for way in options.ways:
                if frozen:
                    report.ways[way] = WayEvidence(way=way, clients=options.clients,
                                                   skipped="the server's loop is frozen")
                    continue
                if way == "silent" and not started.get("silent_detectable", True):
                    report.ways[way] = WayEvidence(way=way, clients=options.clients,
                                                   skipped=f"{server} cannot notice a silent client (no ping timeout)")
                    continue
                evidence, last = _batch(link, client_loop, url, path, options.clients, options, way,
                                        started["added_wait"], last, started.get("cancels_after"))
                report.ways[way] = evidence
                frozen = evidence.frozen
                ends.append(last)
            never_ended = any(w.handlers_alive or w.tasks_alive for w in report.ways.values())
            if frozen:
                report.retention = Retention(skipped="the server's loop is frozen")
            elif not options.rounds:
                report.retention = Retention(skipped="rounds turned off")
            elif never_ended:
                report.retention = Retention(skipped="handlers or tasks never ended, so what they hold stays anyway")
            elif all(w.refused for w in report.ways.values() if w.ran):
                report.retention = Retention(skipped="every handshake was refused")
            elif len(ends) >= 4 and not any(w.refused for w in report.ways.values()):
                report.retention = _rounds_of_ways(ends, options)
            else:
                report.retention = _retention(link, client_loop, url, path, options, started["added_wait"], last)
            if frozen:
                report.notes.append("the server's loop froze: the remaining checks on this server were not run")
            report.seconds = time.monotonic() - t0
            reports.append(report)
    finally:
        stopped = _close(link, options.shutdown_limit)
    _attach_shutdown(reports, stopped, options.shutdown_limit)
    if stopped.get("thread_alive"):
        for report in reports:
            report.notes.append("the frozen server thread could not be stopped in this process; run the check "
                                "from the command line (a process of its own) to end it")
    if stopped.get("shutdown", "ok") not in ("ok", "hung: forced") and reports:  # a forced exit: the shutdown evidence
        reports[-1].notes.append(f"server shutdown (lifespan included): {stopped['shutdown']}")
    return reports


def _attach_shutdown(reports: list[Report], stopped: dict[str, Any], limit: float) -> None:
    """The one graceful shutdown of this server, on each endpoint's report: whose handlers held it, if it blocked."""
    graceful = stopped.get("graceful")
    for report in reports:
        if graceful is None:
            report.shutdown = ShutdownEvidence(limit_s=limit, skipped="the server did not answer the request to stop")
            continue
        handlers: dict[str, int] = dict(graceful.get("handlers") or {})
        report.shutdown = ShutdownEvidence(
            limit_s=float(graceful["limit"]), seconds=graceful["seconds"], logged=list(graceful["logged"]),
            handlers_alive=handlers.pop(report.path, 0), other_handlers=handlers, tasks_alive=int(graceful["tasks"]),
            skipped=graceful.get("skipped"), failed=graceful.get("failed"),
        )


def _close(link: Any, limit: float) -> dict[str, Any]:
    try:
        stopped = (link.agent.stop(limit) if isinstance(link, InProcess)
                   else link.request({"op": "stop", "limit": limit}, timeout=limit + 15.0))
    except (CheckerFailed, UsageError):
        stopped = {}
    finally:
        if isinstance(link, Subprocess):
            link.close()
    return stopped


def check(
    app: Any,
    path: str,
    *,
    clients: int = 5,
    settle: float = 0.3,
    ws: str = "auto",
    server: str = "uvicorn",
    ping_interval: float | None = 0.5,
    ping_timeout: float | None = 0.5,
    ways: tuple[str, ...] = CHECKED_WAYS,
    max_wait: float = 10.0,
    lifespan: bool = True,
    send: Sequence[str] = (),
    headers: Sequence[tuple[str, str] | str] = (),
    subprotocols: Sequence[str] = (),
    python: str | None = None,
    rounds: bool = True,
    shutdown_limit: float = 3.0,
    redis: str | None = None,
    query: str = "",
    app_dir: str | None = None,
) -> Report:
    """Check one WebSocket path of ``app`` (an app object, or ``"module:attribute"``) and return its report.

    This reads no configuration: ``assert_no_leak`` and the pytest fixture apply ``[tool.ws-leakcheck]``."""
    options = Options(
        clients=clients, ways=tuple(ways), ws=ws, ping_interval=ping_interval, ping_timeout=ping_timeout,
        max_wait=max_wait, settle=settle, lifespan=lifespan, python=python, rounds=rounds,
        shutdown_limit=shutdown_limit, redis=redis, app_dir=app_dir,
        script=Script(send=tuple(send), headers=tuple(parse_header(h) for h in headers),
                      subprotocols=tuple(subprotocols), query=query.lstrip("?")),
    )
    return run(app, [path], servers=[server], options=options).reports[0]
