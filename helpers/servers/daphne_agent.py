"""daphne's side of the lab: serve one app with daphne, and answer the kernel's questions.

Run by ``helpers.servers.daphne`` as ``python -m helpers.servers.daphne_agent`` in a
subprocess (daphne runs on Twisted's reactor, which wants a process of its own). It serves
the app with the checker's ``DaphneRunner`` (``ws_leakcheck.servers``) on the listening socket
the kernel bound and passed down (``--fd``), and answers requests in the observers' message format
(``ws_leakcheck.wire``: one JSON object per line, on stdin and stdout, the ``id`` carried back):

- ``{"id": 1, "op": "count", "watch": {"name": ["module", "qualname"]}}`` -> live coroutines
  of each function, counted on daphne's asyncio loop by walking every task's await chain;
- ``{"id": 2, "op": "state"}`` -> the loop's tasks, daphne's open connections, this process's pid;
- ``{"id": 3, "op": "stop"}`` -> cancels the application instances still running (counted),
  then every other task left on the loop (counted), and exits.

Warnings and errors logged here (daphne's, the app's) are sent as ``{"log": {...}}`` lines.
When stdin closes (the kernel stopped the server, or died), the agent stops and exits: a
daphne subprocess never outlives its kernel. Apart from daphne and the app, it imports only
the standard library and the lab's stdlib-only modules.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import threading
import traceback
from collections.abc import Mapping
from types import CodeType
from typing import Any

from helpers.servers.asgiscope import ScopeReporter
from ws_leakcheck import awaitchain, importer, wire
from ws_leakcheck.owner_only import OwnerOnly
from ws_leakcheck.servers import DaphneRunner

EXIT_GRACE = 5.0
_out = threading.Lock()
_protocol = sys.stdout
"""Where the answers go: the process's stdout, which ``main`` keeps for them alone (the app's prints go to stderr)."""


def write(message: dict[str, Any]) -> None:
    line = wire.encode(message)
    with _out:
        _protocol.write(line)
        _protocol.flush()


class ToKernel(logging.Handler):
    """Forwards warnings and errors to the kernel, which keeps them in the server's log."""

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        write({"log": {
            "name": record.name, "levelno": record.levelno, "message": record.getMessage(),
            "exc_type": type(error).__name__ if error is not None else None,
            "exc_text": "".join(traceback.format_exception(error)) if error is not None else None,
        }})


class Agent:
    def __init__(self, server: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.codes: dict[tuple[str, str], CodeType] = {}

    def answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "count":
            codes = {name: self.code(*address) for name, address in request["watch"].items()}
            return {"alive": awaitchain.count_alive(asyncio.all_tasks(self.loop), codes)}
        if op == "state":
            tasks = asyncio.all_tasks(self.loop)
            connections = getattr(self.server, "connections", {})
            return {
                "tasks": [[id(t), t.get_name()] for t in tasks],
                "connections": sum(1 for details in connections.values() if not details.get("disconnected")),
                "pid": os.getpid(),
            }
        return wire.unknown(request)

    def code(self, module: str, qualname: str) -> CodeType:
        if (module, qualname) not in self.codes:
            self.codes[module, qualname] = awaitchain.resolve(module, qualname)
        return self.codes[module, qualname]

    def stop_from_another_thread(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``stop`` run on daphne's loop, waited for here (``timeout`` in the request, plus 2 s)."""
        timeout = float(request.get("timeout", 1.0))
        return asyncio.run_coroutine_threadsafe(self.stop(timeout), self.loop).result(timeout + 2.0)

    async def stop(self, timeout: float) -> dict[str, Any]:
        current = asyncio.current_task()
        connections = getattr(self.server, "connections", {})
        instances = [d["application_instance"] for d in connections.values()
                     if d.get("application_instance") is not None and not d["application_instance"].done()]
        for instance in instances:
            instance.cancel()
        if instances:
            await asyncio.wait(instances, timeout=timeout)
        others = [t for t in asyncio.all_tasks() if t is not current and t not in instances]
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=timeout)
        return {"cancelled_handlers": len(instances), "cancelled_other_tasks": len(others)}


def read_requests(agent: Agent, reactor: Any) -> None:
    """The stdin thread: each request runs on daphne's loop; end of input stops everything."""
    for line in sys.stdin:
        request = wire.decode(line)
        if request.get("op") == "stop":
            write(wire.answered(request, agent.stop_from_another_thread))
            break

        def run(request: dict[str, Any] = request) -> None:
            write(wire.answered(request, agent.answer))

        agent.loop.call_soon_threadsafe(run)
    reactor.callFromThread(reactor.stop)
    timer = threading.Timer(EXIT_GRACE, os._exit, args=(0,))  # if the reactor does not stop, leave anyway
    timer.daemon = True
    timer.start()


def main() -> None:
    global _protocol
    _protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what the app prints (a print in an except block, say) must not break a line of the protocol
    sys.stdout = sys.stderr
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", help="module:attribute")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--ping-interval", type=float, required=True)
    parser.add_argument("--ping-timeout", type=float, required=True)
    parser.add_argument("--application-close-timeout", type=float, required=True)
    args = parser.parse_args()

    root = logging.getLogger()
    root.addHandler(ToKernel(level=logging.WARNING))
    root.setLevel(logging.WARNING)

    app = OwnerOnly(ScopeReporter(importer.load(args.app)[0]))
    listening = socket.socket(fileno=args.fd)  # kept open while daphne serves on it
    runner = DaphneRunner(app, listening, {  # imports daphne.server, which installs Twisted's asyncio reactor
        "ping_interval": args.ping_interval, "ping_timeout": args.ping_timeout,
        "application_close_timeout": args.application_close_timeout, "lifespan": False,
    })
    import daphne
    from twisted.internet import reactor

    server = runner.server

    def ready() -> None:
        reactor.callLater(0, announce)  # type: ignore[arg-type]  # zope interface methods have no self

    runner.on_ready = ready

    def announce() -> None:
        loop = asyncio.get_event_loop()
        loop.set_exception_handler(lambda _, context: logging.getLogger("asyncio").error(
            context.get("message"), exc_info=context.get("exception")))
        agent = Agent(server, loop)
        threading.Thread(target=read_requests, args=(agent, reactor), name="lab-agent-stdin", daemon=True).start()
        write({"ready": os.getpid(), "daphne": daphne.__version__})

    server.run()
    os._exit(0)  # Twisted's threads must not keep a stopped server's process alive


if __name__ == "__main__":
    main()
