"""Redis across workers, measured from Redis itself: what each departed client leaves behind.

One worker process per server serves ``helpers.apps.production_redis`` (three versions of a
per-connection subscription, each on its own channel and Redis client name). Clients connect to
every version, leave by FIN, and then the feed publishes. At each step the lab reads, per
version: Redis connections (``CLIENT LIST``, by client name), subscriptions (``PUBSUB NUMSUB``)
and the worker's live handlers (its reporter).
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from helpers.errors import LabError
from helpers.experiments.deploys import raw_websocket
from helpers.stack.redis import RedisServer
from helpers.stack.sockets import WorkerSockets
from helpers.stack.workers import Server, Worker
from helpers.tables import Table
from helpers.waiting import settled, wait_until

APP = "helpers.apps.production_redis:app"
"""The app every worker serves: the Redis endpoints of notebook 10, as an import string."""
FUNCTIONS = ("redis_finally", "redis_bare", "redis_pattern")
"""The three per-connection Redis endpoints' handler functions, counted in each worker."""
VERSIONS = {"finally": ("/ws/redis-finally", "prices-finally", "redis_finally"),
            "bare": ("/ws/redis-bare", "prices-bare", "redis_bare"),
            "pattern": ("/ws/redis-pattern", "prices-pattern", "redis_pattern")}
STEPS = ("connected", "left", "after publish 1", "after publish 2")


@dataclass(frozen=True)
class Left:
    """What one version of the endpoint still holds: Redis connections / subscriptions / live handlers."""

    connections: int
    subscriptions: int
    handlers: int

    def __str__(self) -> str:
        return f"{self.connections} / {self.subscriptions} / {self.handlers}"


@dataclass(frozen=True)
class PubSubRow:
    """One server and endpoint version: what was left at each step as its subscribers departed."""

    server: str
    version: str
    clients: int
    steps: dict[str, Left]
    receivers: tuple[int, ...]
    """What Redis answered to each PUBLISH: the subscribers it delivered to."""


def _snapshot(redis_server: RedisServer, worker: Worker) -> dict[str, Left]:
    versions = [c.get("name", "").rsplit("-", 1)[0] for c in redis_server.client_list()]
    alive = worker.report()["alive"]
    counts = redis_server.subscriptions(*(channel for _, channel, _ in VERSIONS.values()))
    return {version: Left(versions.count(version), counts[channel], int(alive[function]))
            for version, (_, channel, function) in VERSIONS.items()}


def _settled(redis_server: RedisServer, worker: Worker, settle: float, longest: float = 5.0) -> dict[str, Left]:
    """A snapshot once nothing has changed for ``settle`` seconds (or after ``longest`` more seconds)."""
    return settled(lambda: _snapshot(redis_server, worker), settle, longest)


def measure_departures(
    server: Server, redis_server: RedisServer, *, clients: int = 3, settle: float = 1.0
) -> list[PubSubRow]:
    """Connect ``clients`` to each version on one ``server`` worker, let them leave, publish twice."""
    if redis_server.port is None:
        raise LabError("The workers reach Redis over TCP: start it with RedisServer(tcp=True).")
    functions = [function for _, _, function in VERSIONS.values()]
    with Worker(APP, server, watch=functions, environment={"LAB_REDIS_URL": redis_server.url}) as worker:
        sockets = [raw_websocket(worker.port, path) for path, _, _ in VERSIONS.values() for _ in range(clients)]

        def subscribed() -> bool:
            return all(left.subscriptions == clients for left in _snapshot(redis_server, worker).values())

        if wait_until(subscribed, timeout=10.0) is None:
            raise LabError(f"The {server} worker did not subscribe {clients} clients per version.")
        steps = {"connected": _snapshot(redis_server, worker)}
        for sock in sockets:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        steps["left"] = _settled(redis_server, worker, settle)
        receivers: dict[str, list[int]] = {version: [] for version in VERSIONS}
        for step in ("after publish 1", "after publish 2"):
            for version, (_, channel, _) in VERSIONS.items():
                receivers[version].append(redis_server.publish(channel, '{"price": 42}'))
            steps[step] = _settled(redis_server, worker, settle)
        worker.stop(timeout=0.5)
    return [PubSubRow(server, version, clients, {step: steps[step][version] for step in STEPS},
                      tuple(receivers[version]))
            for version in VERSIONS]


# Across workers: one stack (Redis, a uvicorn and a hypercorn worker, nginx in front), real clients.

ACROSS_STEPS = ("connected", "left", "after publish")


@dataclass(frozen=True)
class WorkerRow:
    """One worker and endpoint version behind nginx: what its departed clients left at each step."""

    worker: str
    server: str
    version: str
    departed: int
    """The clients of this version that nginx sent to this worker (and that then left)."""
    steps: dict[str, Left]
    """Redis connections and subscriptions of this worker's process (``CLIENT LIST``: its client names
    and their ``sub`` field), and its live handlers of this version."""

    def per_client(self, step: str) -> str:
        left = self.steps[step]
        d = max(self.departed, 1)
        return f"{left.connections / d:g} / {left.subscriptions / d:g} / {left.handlers / d:g}"


@dataclass(frozen=True)
class AcrossWorkers:
    rows: list[WorkerRow]
    numsub: dict[str, dict[str, int]]
    """``PUBSUB NUMSUB`` per step and version: Redis's own count of subscribers, all workers together."""
    receivers: dict[str, int]
    """What Redis answered to the PUBLISH on each version's channel: the subscribers it delivered to."""
    tracebacks: dict[str, int]
    """Per worker: "Exception in ASGI application" lines in its log by the end."""


def _stack_snapshot(lab: Any) -> tuple[dict[tuple[str, str], Left], dict[str, int]]:
    redis_server = lab.redis
    listed = redis_server.client_list()
    channels = redis_server.subscriptions(*(channel for _, channel, _ in VERSIONS.values()))
    found: dict[tuple[str, str], Left] = {}
    for worker in lab.workers:
        alive = worker.report()["alive"]
        for version, (_, _, function) in VERSIONS.items():
            mine = [c for c in listed if c.get("name", "") == f"{version}-{worker.pid}"]
            found[worker.name, version] = Left(len(mine), sum(int(c.get("sub", 0)) for c in mine), int(alive[function]))
    return found, {version: channels[channel] for version, (_, channel, _) in VERSIONS.items()}


def _stack_settled(lab: Any, settle: float, longest: float = 5.0) -> tuple[dict[tuple[str, str], Left], dict[str, int]]:
    return settled(lambda: _stack_snapshot(lab), settle, longest)


def measure_across_workers(lab: Any, *, per_version: int = 4, settle: float = 0.5,
                           mark: Callable[[str], None] | None = None) -> AcrossWorkers:
    """Through nginx, ``per_version`` clients on each version; they leave by FIN; then one PUBLISH per channel.

    ``lab`` is ``stack.start(APP, ["uvicorn", "hypercorn"], redis=True, watch=FUNCTIONS)``; ``mark`` is told
    each step as it happens (a live plot's ``StackWatch.mark``).
    """
    mark = mark or (lambda _: None)
    from helpers import clients

    if lab.redis is None or lab.nginx is None:
        raise LabError("Start the stack with nginx and Redis: "
                       "stack.start(APP, ['uvicorn', 'hypercorn'], redis=True, watch=FUNCTIONS).")
    groups = [clients.connect(lab.url(path), per_version) for path, _, _ in VERSIONS.values()]
    if wait_until(lambda: set(_stack_snapshot(lab)[1].values()) == {per_version}, timeout=10.0) is None:
        raise LabError(f"The workers did not subscribe {per_version} clients per version.")
    steps = {"connected": _stack_snapshot(lab)}
    mark("clients left")
    for group in groups:
        clients.leave(group, "fin")
    steps["left"] = _stack_settled(lab, settle)
    mark("publish")
    receivers = {version: lab.redis.publish(channel, '{"price": 42}') for version, (_, channel, _) in VERSIONS.items()}
    steps["after publish"] = _stack_settled(lab, settle)
    rows = [WorkerRow(worker.name, worker.server, version, steps["connected"][0][worker.name, version].handlers,
                      {step: steps[step][0][worker.name, version] for step in ACROSS_STEPS})
            for version in VERSIONS for worker in lab.workers]
    tracebacks = {worker.name: worker.output().count("Exception in ASGI application") for worker in lab.workers}
    return AcrossWorkers(rows, {step: steps[step][1] for step in ACROSS_STEPS}, receivers, tracebacks)


def findings(run: AcrossWorkers) -> dict[str, str]:
    """Per version, what its departed clients left, all workers together, once they left → after the publish: the
    live plot's panel titles."""
    found = {}
    for version in VERSIONS:
        rows = [row for row in run.rows if row.version == version]

        def total(step: str, rows: list[WorkerRow] = rows) -> tuple[int, int]:
            return (sum(r.steps[step].handlers for r in rows), sum(r.steps[step].subscriptions for r in rows))

        (h_left, s_left), (h_after, s_after) = total("left"), total("after publish")
        found[version] = f"{version}: {h_left} → {h_after} handlers, {s_left} → {s_after} subscriptions"
    return found


def overall_finding(run: AcrossWorkers) -> str:
    """Which versions left nothing after the publish, and which left subscriptions with no handler behind them."""
    def after(version: str) -> tuple[int, int]:
        rows = [row for row in run.rows if row.version == version]
        return (sum(r.steps["after publish"].handlers for r in rows),
                sum(r.steps["after publish"].subscriptions for r in rows))

    nothing = [version for version in VERSIONS if after(version) == (0, 0)]
    hidden = [version for version in VERSIONS if after(version)[1] > after(version)[0]]
    return (f"After the publish, left nothing: {', '.join(nothing) or 'no version'}; "
            f"Redis subscriptions with no handler behind them: {', '.join(hidden) or 'none'}")


def watched_across_workers(lab: Any, *, per_version: int = 4) -> tuple[AcrossWorkers, Any]:
    """``measure_across_workers`` under a live plot of each version's handlers and Redis subscriptions, with its
    steps marked, and each panel titled by what it shows once the measurement is over. Returns the run and the
    watch (its samples)."""
    from helpers.experiments import live

    watch = live.StackWatch(lab, groups={version: (function, version)
                                         for version, (_, _, function) in VERSIONS.items()})
    run, watch = live.run_watched(
        lab, lambda: measure_across_workers(lab, per_version=per_version, mark=watch.mark), watch=watch)
    watch.findings.update(findings(run))
    watch.finding = overall_finding(run)
    watch.draw()
    return run, watch


# broadcaster across workers: one Redis subscription per process, one in-process queue per client.

BROADCASTER_PATH, BROADCASTER_CHANNEL, BROADCASTER_FUNCTION = "/ws/redis-broadcaster", "prices-broadcaster", \
    "redis_broadcaster"
"""The broadcaster endpoint's path, the Redis channel it subscribes to, and its handler function's name."""


@dataclass(frozen=True)
class BroadcasterStep:
    """At one step: Redis's view (the channel's subscribers, broadcaster's connections) and each worker's."""

    subscriptions: int
    """``PUBSUB NUMSUB`` of broadcaster's channel."""
    connections: int
    """Connections Redis lists with no client name (``CLIENT LIST``): broadcaster's; the other versions name theirs."""
    queues: dict[str, int]
    """Per worker: broadcaster's in-process queues for the channel (the app's ``GET /broadcaster/queues``)."""
    handlers: dict[str, int]
    """Per worker: live ``redis_broadcaster`` handlers (its reporter)."""


@dataclass(frozen=True)
class BroadcasterRun:
    clients: int
    departed: dict[str, int]
    """Per worker: the live handlers while connected, i.e. the clients nginx sent there (all of them left)."""
    steps: dict[str, BroadcasterStep]
    """"connected", and "left": once every worker had closed its connections to nginx and the readings held
    still."""


def _queues(worker: Worker) -> int:
    with urllib.request.urlopen(worker.url("/broadcaster/queues", scheme="http"), timeout=5) as answer:
        return int(json.loads(answer.read()))


def _broadcaster_step(lab: Any) -> BroadcasterStep:
    named = [c for c in lab.redis.client_list() if not c.get("name")]   # the other versions' are named
    return BroadcasterStep(lab.redis.subscriptions(BROADCASTER_CHANNEL)[BROADCASTER_CHANNEL], len(named),
                           {w.name: _queues(w) for w in lab.workers},
                           {w.name: int(w.report()["alive"][BROADCASTER_FUNCTION]) for w in lab.workers})


def measure_broadcaster(lab: Any, *, clients: int = 4, settle: float = 0.5) -> BroadcasterRun:
    """Through nginx, ``clients`` clients of broadcaster's endpoint connect, then leave by FIN.

    ``lab`` is ``stack.start(APP, ["uvicorn", "hypercorn"], redis=True, watch=["redis_broadcaster"])``.
    """
    from helpers import clients as lab_clients

    if lab.redis is None or lab.nginx is None:
        raise LabError("Start the stack with nginx and Redis: "
                       "stack.start(APP, ['uvicorn', 'hypercorn'], redis=True, watch=['redis_broadcaster']).")
    group: list[lab_clients.Client] = []
    sockets = [WorkerSockets(worker.port).now() for worker in lab.workers]

    def subscribed(expected: int) -> Callable[[], bool]:
        return lambda: sum(_broadcaster_step(lab).queues.values()) == expected

    for opened in range(1, clients + 1):   # one at a time: broadcaster 0.3.1 can lose a queue to two first subscribers
        group += lab_clients.connect(lab.url(BROADCASTER_PATH), 1)
        if wait_until(subscribed(opened), timeout=10.0) is None:
            raise LabError(f"The workers did not subscribe {opened} broadcaster clients.")
    steps = {"connected": _broadcaster_step(lab)}
    lab_clients.leave(group, "fin")
    if wait_until(lambda: all(s.established() == 0 for s in sockets), timeout=10.0) is None:   # each FIN arrived
        raise LabError("The workers did not receive the end of their connections from nginx after the clients left.")
    steps["left"] = settled(lambda: _broadcaster_step(lab), settle)
    return BroadcasterRun(clients, dict(steps["connected"].handlers), steps)


# The notebook's tables.

def across_workers_table(run: AcrossWorkers, caption: str = "") -> Table:
    """One row per version and worker: per departed client, Redis connections / subscriptions / live handlers."""
    return Table(("version", "worker", "clients departed", "per client, once they left", "after the publish"),
                 [(row.version, row.worker, row.departed, row.per_client("left"), row.per_client("after publish"))
                  for row in run.rows], caption)


def broadcaster_table(run: BroadcasterRun, caption: str = "") -> Table:
    """One row per step: what Redis counts, and what each worker holds."""
    def per_worker(counts: dict[str, int]) -> str:
        return ", ".join(f"{worker} {n}" for worker, n in counts.items())

    return Table(("step", "PUBSUB NUMSUB (the channel)", "broadcaster's Redis connections", "queues, per worker",
                  "live handlers, per worker"),
                 [(step, seen.subscriptions, seen.connections, per_worker(seen.queues), per_worker(seen.handlers))
                  for step, seen in run.steps.items()], caption)
