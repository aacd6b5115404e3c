"""Redis across workers, measured from Redis itself: what each departed client leaves behind.

One worker process per server serves ``helpers.apps.production_redis`` (three versions of a
per-connection subscription, each on its own channel and Redis client name). Clients connect to
every version, leave by FIN, and then the feed publishes. At each step the lab reads, per
version: Redis connections (``CLIENT LIST``, by client name), subscriptions (``PUBSUB NUMSUB``)
and the worker's live handlers (its reporter).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from helpers.errors import LabError
from helpers.stack.deploys import raw_websocket
from helpers.stack.redis import RedisServer
from helpers.stack.workers import Server, Worker
from helpers.waiting import wait_until

APP = "helpers.apps.production_redis:app"
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
    names = [c.get("name", "") for c in redis_server.client_list()]
    alive = worker.report()["alive"]
    counts = redis_server.subscriptions(*(channel for _, channel, _ in VERSIONS.values()))
    return {version: Left(names.count(version), counts[channel], int(alive[function]))
            for version, (_, channel, function) in VERSIONS.items()}


def _settled(redis_server: RedisServer, worker: Worker, settle: float, longest: float = 5.0) -> dict[str, Left]:
    """A snapshot once nothing has changed for ``settle`` seconds (or after ``longest`` more seconds)."""
    time.sleep(settle)
    deadline = time.monotonic() + longest
    before = _snapshot(redis_server, worker)
    while True:
        time.sleep(settle / 2)
        now = _snapshot(redis_server, worker)
        if now == before or time.monotonic() > deadline:
            return now
        before = now


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
