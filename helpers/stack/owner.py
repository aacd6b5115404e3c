"""The one owner of a lesson's processes: Redis, the workers and nginx, started and stopped together.

Only one stack lives at a time: ``start()`` stops the previous one first, so re-running a cell
or a whole notebook never leaves a process or a port behind. A KeyboardInterrupt (or any error)
during start-up stops what was already started. When the kernel dies, each process follows it
(``helpers.stack.processes``), and the interpreter's exit stops whatever is still running.
"""

from __future__ import annotations

import atexit
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from helpers.errors import LabError
from helpers.stack.nginx import Nginx
from helpers.stack.processes import stop_children
from helpers.stack.redis import RedisServer
from helpers.stack.tap import Tap
from helpers.stack.workers import WORKER_SERVERS, Server, Worker


@dataclass
class Stack:
    """A production stack started for a lesson: its workers, and nginx and Redis when it has them."""

    workers: list[Worker]
    nginx: Nginx | None = None
    redis: RedisServer | None = None
    startup_seconds: float = 0.0
    """How long ``start()`` took to have every process answering, in seconds."""
    stopped: bool = field(default=False)
    taps: dict[str, Tap] = field(default_factory=dict)
    """With ``tap=True``: the relays in front of the (single) worker, "direct" and "nginx"
    (see ``helpers.stack.tap``)."""

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        """The address clients use: through nginx when there is one, else the first worker's."""
        return self.nginx.url(path, scheme) if self.nginx is not None else self.workers[0].url(path, scheme)

    def direct_url(self, path: str = "/", scheme: str = "ws") -> str:
        """The first worker's address, bypassing nginx (through the "direct" tap when there is one)."""
        return self.taps["direct"].url(path, scheme) if self.taps else self.workers[0].url(path, scheme)

    def reports(self) -> list[dict[str, Any]]:
        """Each worker's own report, in the order they were started."""
        return [worker.report() for worker in self.workers]

    def handlers(self) -> dict[str, int]:
        """Live WebSocket handlers per worker, and their sum under ``"total"``."""
        counts = {worker.name: worker.handlers() for worker in self.workers}
        return {**counts, "total": sum(counts.values())}

    def pids(self) -> list[int]:
        """Every process of the stack: workers, nginx's master and workers, redis-server."""
        pids = [worker.pid for worker in self.workers]
        if self.nginx is not None:
            pids += self.nginx.processes()
        if self.redis is not None:
            pids.append(self.redis.child.pid)
        return pids

    def stop(self) -> None:
        """Stop nginx first (no new connections), then the workers, then Redis."""
        if self.stopped:
            return
        self.stopped = True
        for tap in self.taps.values():
            tap.stop()
        parts: list[Any] = [self.nginx, *self.workers, self.redis]
        for part in parts:  # ask them all first, so that their shutdowns overlap
            if part is not None:
                part.child.signal(part.child.stop_signal)
        for part in parts:
            if part is not None:
                part.stop()
        global _current
        if _current is self:
            _current = None

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


_current: Stack | None = None


def start(
    app: str,
    servers: Sequence[Server] = ("uvicorn", "hypercorn"),
    *,
    nginx: bool = True,
    redis: bool = False,
    watch: Sequence[str] = (),
    proxy_read_timeout: float = 60.0,
    send_timeout: float = 60.0,
    ping_interval: float | None = None,
    graceful_timeout: float | None = None,
    tap: bool = False,
) -> Stack:
    """Start Redis (if asked), one worker per entry of ``servers`` serving ``app``, and nginx in front.

    Replaces the stack already running. The workers get ``LAB_REDIS_URL`` in their environment
    when Redis runs. ``tap=True`` (one worker only) puts two taps in front of the worker, one for
    nginx and one for direct clients (``direct_url``), that record how each connection ended.
    """
    global _current
    if not servers:
        raise LabError("A stack needs at least one worker: pass servers=('uvicorn', 'hypercorn'), for instance.")
    unknown = [s for s in servers if s not in WORKER_SERVERS]
    if unknown:
        raise LabError(f"Unknown worker server {unknown[0]!r}; choose among {', '.join(WORKER_SERVERS)}.")
    if tap and len(servers) != 1:
        raise LabError("tap=True records what reaches one worker: pass a single server, e.g. servers=['uvicorn'].")
    stop_current()
    started = time.monotonic()
    stack = Stack(workers=[])
    try:
        if redis:
            stack.redis = RedisServer()
        for index, server in enumerate(servers):
            stack.workers.append(Worker(
                app, server, watch=watch, name=f"{server}-{index + 1}", ping_interval=ping_interval,
                graceful_timeout=graceful_timeout,
                environment={"LAB_REDIS_URL": stack.redis.url} if stack.redis is not None else None, wait=False,
            ))
        for worker in stack.workers:
            worker.wait_ready()
        if tap:
            stack.taps = {route: Tap(stack.workers[0].port, name=f"tap-{route}") for route in ("direct", "nginx")}
        if nginx:
            backends = [stack.taps["nginx"].port] if tap else [w.port for w in stack.workers]
            stack.nginx = Nginx(backends, proxy_read_timeout=proxy_read_timeout,
                                send_timeout=send_timeout)
    except BaseException:  # KeyboardInterrupt included: nothing half-started stays behind
        stack.stop()
        raise
    stack.startup_seconds = time.monotonic() - started
    _current = stack
    _stop_at_exit()
    return stack


def current() -> Stack | None:
    return _current


def stop_current() -> None:
    if _current is not None:
        _current.stop()


def _stop_everything() -> None:
    stop_current()
    stop_children()


_registered = False


def _stop_at_exit() -> None:
    global _registered
    if not _registered:
        atexit.register(_stop_everything)
        _registered = True
