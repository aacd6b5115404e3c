"""The server side of a leak check: standard library only, plus the server package.

The agent imports the user's app, serves it on 127.0.0.1 (port 0) on an event loop of its own thread, to this
user's processes only (``ws_leakcheck.owner_only``: another user's are refused before the app sees them, so they
cannot change the count), and answers questions about what is alive on that loop. It never opens a client: the
clients and the report stay in the lab. It runs in two ways, with the same code:

- in the lab's own process (``Agent().handle(request)``), for an app object from a notebook;
- in another interpreter, for ``--python PATH`` (``RUN_BY_PATH``, which imports this package from its folder
  without the checker's environment): requests and answers are JSON lines on stdin/stdout, so only the server
  package (uvicorn) must exist there. This module and the ones it imports use only the standard library.

Requests and answers are the observers' messages (``ws_leakcheck.wire``); the ``op``s are ``start``, ``mark``,
``snapshot``, ``stop``. A mistake of the user's (an import that fails, a path that is not a WebSocket route, a
startup that fails) is answered ``{"error": "usage", "message": ...}``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import functools
import gc
import inspect
import logging
import os
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from types import CodeType, ModuleType
from typing import Any

from ws_leakcheck import wire
from ws_leakcheck.awaitchain import between_steps, chain_codes
from ws_leakcheck.connections import Connections
from ws_leakcheck.errors import UsageError
from ws_leakcheck.importer import PACKAGE_FOLDER, load, site
from ws_leakcheck.owner_only import OwnerOnly
from ws_leakcheck.servers import HOST, RUNNERS, ServerRunner

PROTOCOL = 1
BEAT = 0.05
"""Seconds between two heartbeats of the server loop."""
IN_LOOP_TIMEOUT = 0.2
SERVER_LOGGERS = ("uvicorn", "hypercorn", "granian", "_granian", "daphne")
WATCHED_MODULE_PREFIXES = (
    "asyncio.queues", "asyncio.locks", "asyncio.tasks", "asyncio.futures", "_asyncio",
    "starlette.websockets", "fastapi.websockets",
)


RUN_BY_PATH = """
import importlib.util, sys
folder = sys.argv[1]
spec = importlib.util.spec_from_file_location("ws_leakcheck", folder + "/__init__.py",
                                              submodule_search_locations=[folder])
package = importlib.util.module_from_spec(spec)
sys.modules["ws_leakcheck"] = package
spec.loader.exec_module(package)
from ws_leakcheck.agent import main
main()
"""
"""``python -c RUN_BY_PATH FOLDER``: the agent in another interpreter, this package imported from FOLDER only (not
the checker's site-packages, whose FastAPI or websockets would shadow the project's)."""


# The app, its modules, and the code to watch for a path.


def router_of(app: Any) -> Any | None:
    """The object holding the app's routes, through any middleware that keeps the app in ``.app``."""
    obj = app
    for _ in range(30):
        routes = getattr(obj, "routes", None)
        if isinstance(routes, (list, tuple)):
            return obj
        router = getattr(obj, "router", None)
        if router is not None and isinstance(getattr(router, "routes", None), (list, tuple)):
            return router
        inner = getattr(obj, "app", None)
        if inner is None or inner is obj:
            return None
        obj = inner
    return None


def innermost_app(app: Any) -> Any:
    obj = app
    for _ in range(30):
        inner = getattr(obj, "app", None)
        if inner is None or inner is obj or not callable(inner):
            return obj
        obj = inner
    return obj


def _is_websocket_route(route: Any) -> bool:
    return any(cls.__name__ == "WebSocketRoute" for cls in type(route).__mro__)


def _included(route: Any) -> list[Any] | None:
    """The routes of an included router node (FastAPI >= 0.16x keeps ``include_router`` lazily), or None."""
    candidates = getattr(route, "effective_candidates", None)
    if not callable(candidates):
        return None
    found = []
    for candidate in candidates():
        inner = getattr(candidate, "starlette_route", None) or getattr(candidate, "original_route", None)
        found.append(inner if inner is not None else candidate)
    return found


def websocket_paths(app: Any) -> list[str]:
    """The path templates of the app's WebSocket routes, Mounts and included routers included."""
    router = router_of(app)
    if router is None:
        return []

    def walk(routes: list[Any], prefix: str) -> list[str]:
        found: list[str] = []
        for route in routes:
            included = _included(route)
            sub = getattr(route, "routes", None)
            if included is not None:
                found += walk(included, prefix)
            elif _is_websocket_route(route):
                found.append(prefix + route.path)
            elif sub:
                found += walk(list(sub), prefix + getattr(route, "path", ""))
        return found

    return walk(list(router.routes), "")


def _scope(kind: str, path: str) -> dict[str, Any]:
    bare, _, query = path.partition("?")
    scope: dict[str, Any] = {
        "type": kind, "path": bare, "raw_path": bare.encode(), "root_path": "", "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1")], "path_params": {}, "scheme": "ws" if kind == "websocket" else "http",
        "server": (HOST, 0), "client": (HOST, 0),
    }
    if kind == "http":
        scope["method"] = "GET"
    return scope


def _full(match: Any) -> bool:
    return getattr(match, "name", str(match)).upper().endswith("FULL")


def _match(routes: list[Any], scope: dict[str, Any], http: bool = False) -> Any | None:
    """Starlette's own matching (``route.matches(scope)``), into Mounts; the route or mounted app found."""
    for route in routes:
        included = _included(route)
        if included is not None:
            found = _match(included, scope, http)
            if found is not None:
                return found
            continue
        matches = getattr(route, "matches", None)
        if matches is None:
            continue
        try:
            match, child = matches(dict(scope))
        except Exception:  # noqa: BLE001 - a route that cannot judge this scope does not serve it
            continue
        if not (_full(match) or (http and getattr(match, "name", "") == "PARTIAL")):
            continue
        if _is_websocket_route(route) or (http and hasattr(route, "methods")):
            return route
        inner = getattr(route, "routes", None)
        if inner:
            found = _match(list(inner), {**scope, **child}, http)
            if found is not None:
                return found
        elif getattr(route, "app", None) is not None:
            return route.app
    return None


class Target:
    """What the agent counts for one path: the coroutines of its handler."""

    def __init__(self, path: str, label: str, codes: tuple[CodeType, ...], kind: str, note: str = "") -> None:
        self.path, self.label, self.codes, self.kind, self.note = path, label, codes, kind, note

    def describe(self) -> dict[str, str]:
        return {"path": self.path, "endpoint": self.label, "kind": self.kind, "note": self.note}


def _coroutine_code(fn: Any) -> CodeType | None:
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = inspect.unwrap(fn) if callable(fn) else fn
    fn = getattr(fn, "__func__", fn)
    code: CodeType | None = getattr(fn, "__code__", None)
    if code is not None and code.co_flags & inspect.CO_COROUTINE:
        return code
    return None


def _codes_of(endpoint: Any) -> tuple[tuple[CodeType, ...], str, str]:
    """The code objects to watch for an endpoint: a function, a class (WebSocketEndpoint), or an ASGI callable."""
    if isinstance(endpoint, type):
        for name in ("dispatch", "__call__"):
            code = _coroutine_code(getattr(endpoint, name, None))
            if code is not None:
                return (code,), f"{endpoint.__qualname__}.{name}", "class"
        raise UsageError(f"Cannot watch {endpoint.__qualname__}: it has no async dispatch() or __call__().")
    code = _coroutine_code(endpoint)
    if code is not None:
        fn = inspect.unwrap(endpoint) if not isinstance(endpoint, functools.partial) else endpoint.func
        return (code,), getattr(fn, "__qualname__", repr(fn)), "function"
    code = _coroutine_code(getattr(type(endpoint), "__call__", None))  # noqa: B004 - the method's code, not a test
    if code is not None:
        return (code,), f"{type(endpoint).__qualname__}.__call__", "asgi"
    raise UsageError(f"Cannot watch {endpoint!r}: it is neither an async function nor an object with an "
                     "async __call__.")


def resolve(app: Any, path: str) -> Target:
    """The handler serving ``path``, found with the app's own route matching."""
    if not path.startswith("/"):
        raise UsageError(f"WebSocket path {path!r} should start with '/'.")
    router = router_of(app)
    if router is None:
        inner = innermost_app(app)
        codes, label, _ = _codes_of(inner)
        return Target(path, label, codes, "asgi",
                      "a plain ASGI app: the checker counts the app's own coroutine, one per connection")
    if "{" in path:
        raise UsageError(f"Path {path!r} is a route template; give a concrete path, with its parameters filled in.")
    found = _match(list(router.routes), _scope("websocket", path))
    if found is None:
        listing = ", ".join(websocket_paths(app)) or "none"
        if _match(list(router.routes), _scope("http", path), http=True) is not None:
            raise UsageError(f"{path!r} is an HTTP route, not a WebSocket route; WebSocket routes: {listing}.")
        raise UsageError(f"The app has no WebSocket route at {path!r}; WebSocket routes: {listing}.")
    if _is_websocket_route(found):
        codes, label, kind = _codes_of(found.endpoint)
        return Target(path, label, codes, kind)
    codes, label, _ = _codes_of(innermost_app(found))
    return Target(path, label, codes, "asgi",
                  "a mounted ASGI app: the checker counts its own coroutine, one per connection")


def app_modules(app: Any, targets: list[Target], extra: str | None) -> list[ModuleType]:
    """The modules whose globals hold the app's state: the app's own, and each watched endpoint's."""
    names = {extra} if extra else set()
    names.add(getattr(app, "__module__", None) or "")
    for target in targets:
        for code in target.codes:
            for module in list(sys.modules.values()):
                if getattr(module, "__file__", None) == code.co_filename:
                    names.add(module.__name__)
    if "__main__" in names and "__main__" not in sys.modules:
        names.discard("__main__")
    found = [sys.modules[n] for n in sorted(names) if n in sys.modules]
    return [m for m in found if not _is_library(m)]


LIBRARIES = ("starlette", "fastapi", "uvicorn", "asyncio", "hypercorn", "granian", "daphne", "anyio")


def _is_library(module: ModuleType) -> bool:
    """A framework's or server's module: its globals are not the app's state."""
    return module.__name__.split(".")[0] in LIBRARIES


# Evidence read on the server's loop.


def _timers(loop: asyncio.AbstractEventLoop) -> dict[int, float]:
    """Future id -> when the loop will wake it (``asyncio.sleep``, ``wait_for``, ``timeout``)."""
    wake: dict[int, float] = {}
    for handle in list(getattr(loop, "_scheduled", [])):
        if handle.cancelled():
            continue
        for arg in getattr(handle, "_args", None) or ():
            if isinstance(arg, asyncio.Future):
                wake[id(arg)] = min(handle.when(), wake.get(id(arg), float("inf")))
        owner = getattr(getattr(handle, "_callback", None), "__self__", None)
        task = getattr(owner, "_task", None)
        if task is not None:
            wake[id(task)] = min(handle.when(), wake.get(id(task), float("inf")))
    return wake


def _wake_at(task: asyncio.Task[Any], timers: dict[int, float]) -> float | None:
    """When the loop will next wake ``task`` on a timer (loop time), or None: it waits for something else."""
    waiter = getattr(task, "_fut_waiter", None)
    found = [w for w in (timers.get(id(waiter)) if waiter is not None else None, timers.get(id(task))) if w is not None]
    return min(found) if found else None


def _label(task: asyncio.Task[Any]) -> str:
    """What a task runs, for a report: its outermost function and where it is defined, and the innermost one it
    awaits now (``serve in app/main.py:12, now in sleep``)."""
    codes = chain_codes(task.get_coro())
    if not codes:
        return task.get_name()
    outer, inner = codes[0], codes[-1]
    where = f"{getattr(outer, 'co_qualname', outer.co_name)} in {_short(outer.co_filename)}:{outer.co_firstlineno}"
    return where if inner is outer else f"{where}, now in {inner.co_name}"


def _short(filename: str) -> str:
    """The last two parts of a path: enough to tell ``asyncio/tasks.py`` from ``app/main.py``."""
    parts = filename.replace(os.sep, "/").split("/")
    return "/".join(parts[-2:])


class Exceptions(logging.Handler):
    """Counts unhandled exceptions by class name, without keeping the records (their tracebacks hold frames)."""

    def __init__(self, thread_id: int | None) -> None:
        super().__init__(level=logging.ERROR)
        self.thread_id = thread_id
        self.counts: dict[str, int] = {}
        self.first: dict[str, str] = {}
        self.sites: dict[str, dict[str, Any]] = {}
        """Exception name -> where the first one was raised in the app's own code (see ``site``)."""

    def add(self, name: str, message: str, error: BaseException | None = None) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
        self.first.setdefault(name, message)
        if error is not None and name not in self.sites:
            found = site(error)
            if found is not None:
                self.sites[name] = found

    def emit(self, record: logging.LogRecord) -> None:
        if self.thread_id is not None and record.thread != self.thread_id:
            return
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            self.add(type(error).__name__, f"{type(error).__name__}: {error}"[:300], error)
        else:
            lines = [line.strip() for line in record.getMessage().strip().splitlines() if line.strip()]
            if len(lines) > 1 and lines[0].startswith("Traceback"):  # a traceback logged as text (granian)
                self.add(lines[-1].split(":", 1)[0].rsplit(".", 1)[-1], lines[-1][:300])
        record.exc_info = None  # let the traceback, and the frames it holds, go

    def loop_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        message = str(context.get("message", ""))
        if error is None:
            self.add(message.splitlines()[0][:80] if message else "asyncio error", message[:300])
        elif message.startswith("Task exception was never retrieved"):
            self.add(f"{type(error).__name__} in a task nobody awaited", f"{type(error).__name__}: {error}"[:300],
                     error)
        else:
            self.add(type(error).__name__, f"{type(error).__name__}: {error}"[:300], error)

    def take(self) -> dict[str, int]:
        counts, self.counts = self.counts, {}
        self.first, self.sites = {}, {}
        return counts


class Shutdown(logging.Handler):
    """What the server logs while it shuts down (its INFO lines included: uvicorn's "Waiting for ...")."""

    def __init__(self, thread_id: int | None) -> None:
        super().__init__(level=logging.INFO)
        self.thread_id = thread_id
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.thread_id is not None and record.thread != self.thread_id:
            return
        message = record.getMessage().strip().splitlines()
        if message and len(self.lines) < 20:
            self.lines.append(message[0][:200])


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {"python": sys.version.split()[0]}
    for name in ("fastapi", "starlette", "uvicorn", "websockets", "wsproto", "hypercorn", "granian", "daphne"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


class Agent:
    """One checked app on one server. ``handle(request)`` is the whole interface."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.runner: ServerRunner | None = None
        self.serving: concurrent.futures.Future[None] | None = None
        self.targets: dict[str, Target] = {}
        self.modules: list[ModuleType] = []
        self.created: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self.marked: set[int] = set()
        self.handler_tasks: weakref.WeakKeyDictionary[asyncio.Task[Any], str] = weakref.WeakKeyDictionary()
        """Each handler task seen since the mark -> its path, to tell how it ended."""
        self.cancelled: dict[str, int] = {}
        """Path -> handlers (since the mark) that ended cancelled, not by their own return or raise."""
        self.server_files: tuple[str, ...] = ()
        self.beat = 0.0
        self.errors = Exceptions(None)
        self.connections = Connections()
        self.startup_errors: list[str] = []
        self._propagate: dict[str, bool] = {}
        self._stopped: dict[str, Any] | None = None
        self._frozen_gc = False

    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The answer to one request, in the observers' message format (``ws_leakcheck.wire``)."""
        return wire.answered(request, self._dispatch)

    def _dispatch(self, request: Mapping[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "start":
            return self.start(request)
        if op == "mark":
            return self.mark()
        if op == "snapshot":
            return self.snapshot(bool(request.get("retained")))
        if op == "stop":
            limit = request.get("limit")
            return self.stop(None if limit is None else float(limit))
        return wire.unknown(request)

    # Starting.

    def start(self, request: Mapping[str, Any]) -> dict[str, Any]:
        spec = request["app"]
        app_dir = request.get("app_dir")
        if app_dir and isinstance(spec, str) and app_dir not in sys.path:
            sys.path.insert(0, app_dir)  # as uvicorn's --app-dir
        app, module_name = (spec, None) if not isinstance(spec, str) else load(spec)
        paths: list[str] = list(request.get("paths") or [])
        skipped: list[str] = []
        if request.get("all"):
            paths += [p for p in websocket_paths(app) if "{" not in p and p not in paths]
            skipped = [p for p in websocket_paths(app) if "{" in p]
            if not paths:
                raise UsageError("--all found no WebSocket route without path parameters; give the paths.")
        self.targets = {path: resolve(app, path) for path in paths}
        self.modules = app_modules(app, list(self.targets.values()), module_name)
        server = request.get("server", "uvicorn")
        if server not in RUNNERS:
            raise UsageError(f"Server {server!r} is not available to the agent; choose among {', '.join(RUNNERS)}.")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((HOST, 0))
        sock.listen(128)
        port = sock.getsockname()[1]  # read now: daphne adopts the descriptor and closes ours
        try:
            self.runner = RUNNERS[server](OwnerOnly(self.connections.wrap(app)), sock, request)
        except ModuleNotFoundError as missing:
            sock.close()
            raise UsageError(f"The {server} server is not installed in this Python ({sys.executable}): "
                             f"{missing}.") from None
        except BaseException:  # a server that refuses its settings: the socket bound for it is closed, the error kept
            sock.close()
            raise
        self.server_files = tuple(
            os.path.dirname(getattr(sys.modules.get(name), "__file__", "") or "/nonexistent") + os.sep
            for name in (server, "websockets", "wsproto", "h11", "httptools") if sys.modules.get(name)
        )
        self._start_loop()
        self._attach_logging()
        self.serving = asyncio.run_coroutine_threadsafe(self._serve(), self.loop)  # type: ignore[arg-type]
        deadline = time.monotonic() + float(request.get("startup_timeout", 10.0))
        while not self.runner.started():
            if self.serving.done():
                error = self.serving.exception()
                message = ("; ".join(self.startup_errors)
                           or (f"{type(error).__name__}: {error}" if error else "it exited"))
                self._teardown()
                raise UsageError(f"The app's startup failed: {message}.")
            if time.monotonic() > deadline:
                self._teardown()
                raise UsageError(f"The server did not start within {request.get('startup_timeout', 10.0)} s "
                                 "(a lifespan startup that hangs?).")
            time.sleep(0.005)
        asyncio.run_coroutine_threadsafe(self._heartbeat(), self.loop)  # type: ignore[arg-type]
        self.errors.take()
        # What exists now is the baseline: frozen objects are skipped by every later collection and
        # by gc.get_objects(), so counting what the sessions retain stays fast in a large process.
        gc.collect()
        gc.freeze()
        self._frozen_gc = True
        left_out = [(f"--all left out the routes with path parameters ({', '.join(skipped)}): give a concrete "
                     "path to check each")] if skipped else []
        return {
            "protocol": PROTOCOL, "port": port, "server": server, "added_wait": self.runner.added_wait,
            "cancels_after": self.runner.cancels_after,
            "silent_detectable": self.runner.silent_detectable,
            "notes": [*self.runner.notes, *left_out],
            "targets": [t.describe() for t in self.targets.values()],
            "versions": {**_versions(), **self.runner.versions()},
            "pid": os.getpid(),
        }

    def _start_loop(self) -> None:
        assert self.runner is not None
        runner = self.runner
        self.loop = runner.loop or asyncio.new_event_loop()
        loop = self.loop

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            task = asyncio.Task(coro, loop=loop, **kwargs)
            self.created.add(task)
            return task

        loop.set_task_factory(factory)
        loop.set_exception_handler(self.errors.loop_handler)
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            runner.run_loop(loop)

        self.thread = threading.Thread(target=run, name="leakcheck-server", daemon=True)
        self.thread.start()
        ready.wait(5.0)
        self.errors.thread_id = None if self.runner is not None and self.runner.log_any_thread else self.thread.ident

    def _attach_logging(self) -> None:
        agent = self

        class Startup(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if agent.runner is not None and agent.runner.started():
                    return
                error = record.exc_info[1] if record.exc_info else None
                if error is not None:
                    agent.startup_errors.append(f"{type(error).__name__}: {error}")
                    return
                lines = [line.strip() for line in record.getMessage().strip().splitlines() if line.strip()]
                if len(lines) > 1:  # a formatted traceback (Starlette's lifespan.startup.failed): its last line
                    agent.startup_errors.append(lines[-1])

        self._startup = Startup(level=logging.ERROR)
        for name in SERVER_LOGGERS:
            logger = logging.getLogger(name)
            self._propagate[name] = logger.propagate
            logger.propagate = False  # other handlers (pytest's, the root's) would keep the tracebacks alive
            logger.addHandler(self._startup)
            logger.addHandler(self.errors)
            if logger.getEffectiveLevel() > logging.ERROR:
                logger.setLevel(logging.ERROR)

    def _detach_logging(self) -> None:
        for name, propagate in self._propagate.items():
            logger = logging.getLogger(name)
            logger.removeHandler(self.errors)
            logger.removeHandler(self._startup)
            logger.propagate = propagate
        self._propagate.clear()

    async def _serve(self) -> None:
        assert self.runner is not None
        try:
            await self.runner.serve()
        except SystemExit as exit:  # uvicorn exits the process when the app's startup fails
            raise RuntimeError(f"the server exited (status {exit.code})") from None

    async def _heartbeat(self) -> None:
        while True:
            self.beat = time.monotonic()
            await asyncio.sleep(BEAT)

    # Reading.

    def _on_loop(self, fn: Callable[[], Any]) -> tuple[Any, bool]:
        """Run ``fn`` on the server's loop between two steps; from this thread if the loop does not answer."""
        assert self.loop is not None
        try:
            return between_steps(self.loop, fn, IN_LOOP_TIMEOUT), True
        except (RuntimeError, concurrent.futures.TimeoutError):
            return fn(), False

    def _tasks(self) -> list[asyncio.Task[Any]]:
        assert self.loop is not None
        for _ in range(5):
            try:
                return list(asyncio.all_tasks(self.loop))
            except RuntimeError:  # the set changed while it was copied (read from another thread)
                continue
        return []

    def _server_task(self, task: asyncio.Task[Any]) -> bool:
        codes = chain_codes(task.get_coro())
        return bool(codes) and codes[0].co_filename.startswith(self.server_files)

    def _read(self) -> dict[str, Any]:
        assert self.loop is not None
        now = self.loop.time()
        timers = _timers(self.loop)
        wanted = {code: path for path, target in self.targets.items() for code in target.codes}
        handlers: dict[str, list[list[Any]]] = {path: [] for path in self.targets}
        app_tasks: list[list[Any]] = []
        server_tasks: list[list[Any]] = []
        for task in self._tasks():
            if task.done():
                continue
            codes = chain_codes(task.get_coro())
            paths = {wanted[c] for c in codes if c in wanted}
            wake_at = _wake_at(task, timers)
            entry = [id(task), None if wake_at is None else round(max(0.0, wake_at - now), 3), wake_at]
            for path in paths:
                handlers[path].append(entry)
                if id(task) not in self.marked:
                    self.handler_tasks[task] = path
            if paths or id(task) in self.marked:
                continue
            if task in self.created:
                from_server = bool(codes) and codes[0].co_filename.startswith(self.server_files)
                (server_tasks if from_server else app_tasks).append([*entry, _label(task)])
        for task, path in list(self.handler_tasks.items()):
            if task.done():
                del self.handler_tasks[task]
                if task.cancelled():
                    self.cancelled[path] = self.cancelled.get(path, 0) + 1
        return {"handlers": handlers, "app_tasks": app_tasks, "server_tasks": server_tasks,
                "cancelled": dict(self.cancelled)}

    def mark(self) -> dict[str, Any]:
        """Start a new phase: what is alive now belongs to the phases before."""
        self.marked = {id(t) for t in self._tasks()}
        self.handler_tasks = weakref.WeakKeyDictionary()
        self.cancelled = {}
        self.connections.mark()
        return {"exceptions": self.errors.take()}

    def snapshot(self, retained: bool = False) -> dict[str, Any]:
        lag = time.monotonic() - self.beat
        read: dict[str, Any]
        read, in_loop = self._on_loop(self._read)
        read["loop_lag"] = round(lag, 3)
        read["in_loop"] = in_loop
        read["cpu"] = self._cpu()
        read["sends"] = self.connections.read(list(self.targets))
        if retained:
            gc.collect()
            read["retained"] = self._retained()
            read["containers"] = self._containers()
        read["exceptions"] = dict(self.errors.counts)
        read["exception_examples"] = dict(self.errors.first)
        read["exception_sites"] = dict(self.errors.sites)
        return read

    def _cpu(self) -> float:
        assert self.thread is not None and self.thread.ident is not None
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(self.thread.ident))
        except (AttributeError, OSError):
            return time.process_time()

    def _retained(self) -> dict[str, int]:
        """Objects reachable after garbage collection, by type: the app's own classes, asyncio's, WebSocket."""
        own = {m.__name__ for m in self.modules}
        counts: dict[str, int] = {}
        loop = self.loop
        names: dict[type, str | None] = {}
        for obj in gc.get_objects():
            cls = type(obj)
            if cls not in names:
                module = getattr(cls, "__module__", "") or ""
                watched = module in own or module.startswith(WATCHED_MODULE_PREFIXES)
                names[cls] = f"{module}.{cls.__qualname__}" if watched else None
            name = names[cls]
            if name is None:
                continue
            if isinstance(obj, asyncio.Future) and obj.get_loop() is not loop:
                continue  # the lab's clients, in the same process
            counts[name] = counts.get(name, 0) + 1
        return counts

    def _containers(self) -> dict[str, int]:
        """Sizes of module-level sets, lists, dicts and deques of the app's modules, and of their objects'
        attributes."""
        import collections

        kinds = (set, list, dict, collections.deque, asyncio.Queue)
        sizes: dict[str, int] = {}

        def size(value: Any) -> int | None:
            if isinstance(value, asyncio.Queue):
                return value.qsize()
            if isinstance(value, kinds):
                return len(value)  # type: ignore[arg-type]  # the Queue was answered above
            return None

        for module in self.modules:
            own = module.__name__
            for name, value in list(vars(module).items()):
                if name.startswith("_") or name in ("In", "Out"):
                    continue
                s = size(value)
                if s is not None:
                    sizes[f"{own}.{name}"] = s
                elif (not isinstance(value, (type, ModuleType)) and not callable(value)
                      and getattr(type(value), "__module__", None) == own):
                    for attr, inner in list(getattr(value, "__dict__", {}).items()):
                        s = size(inner)
                        if s is not None:
                            sizes[f"{own}.{name}.{attr}"] = s
        return sizes

    # Stopping.

    def stop(self, limit: float | None = None) -> dict[str, Any]:
        """Shut the server down gracefully, as a deploy does (what its SIGINT/SIGTERM handler does), and measure it.

        The wait is bounded by ``limit`` seconds (the request's, else the start's ``shutdown_limit``); a server
        still running then is forced, and what was still alive at the limit says what held it."""
        if self._stopped is not None:
            return self._stopped
        if self.loop is None or self.runner is None:
            return {"stopped": True}
        if limit is None:
            limit = float(self.runner.options.get("shutdown_limit") or 3.0)
        frozen = time.monotonic() - self.beat > 1.0
        started = time.monotonic()
        shutdown = "ok"
        graceful: dict[str, Any] = {"limit": limit, "seconds": None, "logged": [], "handlers": {}, "tasks": 0,
                                    "skipped": "the server's loop is frozen" if frozen else None}
        if not frozen:
            logged = self._listen_to_shutdown()
            self.runner.stop(force=False)
            assert self.serving is not None
            try:
                self.serving.result(limit)
                graceful["seconds"] = round(time.monotonic() - started, 2)
            except concurrent.futures.TimeoutError:
                alive, _ = self._on_loop(self._alive)
                graceful.update(alive)
                self.runner.stop(force=True)
                shutdown = "hung: forced"
                try:
                    self.serving.result(2.0)
                except (Exception, asyncio.CancelledError):  # noqa: BLE001 - the forced exit's own error is not the app's
                    shutdown = "hung: abandoned"
            except (Exception, asyncio.CancelledError) as error:  # noqa: BLE001 - reported; an interrupt propagates
                shutdown = f"failed: {type(error).__name__}: {error}"
                graceful["seconds"] = round(time.monotonic() - started, 2)
                graceful["failed"] = shutdown
            graceful["logged"] = self._stop_listening(logged)
        cancelled, alive_thread = self._teardown(frozen)
        self._stopped = {
            "stopped": True, "seconds": round(time.monotonic() - started, 2), "shutdown": shutdown,
            "cancelled": cancelled, "frozen": frozen, "thread_alive": alive_thread, "exceptions": self.errors.take(),
            "graceful": graceful,
        }
        return self._stopped

    def _listen_to_shutdown(self) -> tuple[Shutdown, dict[str, int]]:
        handler = Shutdown(self.errors.thread_id)
        levels = {}
        for name in SERVER_LOGGERS:
            logger = logging.getLogger(name)
            levels[name] = logger.level
            logger.addHandler(handler)
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)
        return handler, levels

    def _stop_listening(self, listening: tuple[Shutdown, dict[str, int]]) -> list[str]:
        handler, levels = listening
        for name, level in levels.items():
            logger = logging.getLogger(name)
            logger.removeHandler(handler)
            logger.setLevel(level)
        return list(handler.lines)

    def _alive(self) -> dict[str, Any]:
        """What the app still runs: handlers per path (every phase's), and the other tasks the app started."""
        wanted = {code: path for path, target in self.targets.items() for code in target.codes}
        handlers = dict.fromkeys(self.targets, 0)
        tasks = 0
        for task in self._tasks():
            if task.done():
                continue
            codes = chain_codes(task.get_coro())
            paths = {wanted[c] for c in codes if c in wanted}
            for path in paths:
                handlers[path] += 1
            if paths or not codes or task not in self.created:
                continue
            if codes[0].co_filename.startswith((*self.server_files, PACKAGE_FOLDER + os.sep)):
                continue  # the server's own tasks, and the checker's (its heartbeat, the serving task)
            tasks += 1
        return {"handlers": {path: n for path, n in handlers.items() if n}, "tasks": tasks}

    def _teardown(self, frozen: bool = False) -> tuple[int, bool]:
        """Cancel and await every task the app left, retrieve their exceptions, stop the loop and its thread."""
        loop, thread = self.loop, self.thread
        cancelled = 0
        if frozen and loop is not None and thread is not None and thread.is_alive():
            _interrupt(thread)
        if loop is not None and thread is not None and thread.is_alive():
            async def cancel_all() -> int:
                current = asyncio.current_task()
                left = [t for t in asyncio.all_tasks() if t is not current]
                for task in left:
                    task.cancel()
                if left:
                    await asyncio.wait(left, timeout=2.0)
                await loop.shutdown_asyncgens()
                return len(left)

            try:
                cancelled = asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(4.0)
            except (concurrent.futures.TimeoutError, RuntimeError):
                cancelled = -1
            loop.call_soon_threadsafe(loop.stop)
            thread.join(2.0)
        for task in list(self.created):
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: no "Task exception was never retrieved" at exit
        self._detach_logging()
        if self._frozen_gc:
            gc.unfreeze()
            self._frozen_gc = False
        if self.runner is not None:
            with contextlib.suppress(OSError):  # daphne (twisted) adopted the descriptor and closed it at shutdown
                self.runner.sock.close()
        alive = bool(thread and thread.is_alive())
        if loop is not None and not alive and not loop.is_closed():
            loop.close()
        return cancelled, alive


def _interrupt(thread: threading.Thread, attempts: int = 50) -> None:
    """Raise SystemExit in a thread whose loop never yields (a handler spinning); a bare ``except`` may swallow it."""
    for _ in range(attempts):
        if thread.ident is None or not thread.is_alive():
            return
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
        time.sleep(0.01)


def main() -> int:
    """JSON lines on stdin/stdout; what the app prints goes to stderr."""
    sys.path[0] = os.getcwd()  # the user's project, not this script's folder
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    agent = Agent()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = wire.decode(line)
        protocol.write(wire.encode(agent.handle(request)))
        protocol.flush()
        if request.get("op") == "stop":
            break
    agent.stop()
    protocol.flush()
    sys.stderr.flush()
    os._exit(0)  # leaked tasks and a frozen loop's thread must not keep this process alive


if __name__ == "__main__":
    main()
