"""Inside each worker process: the app, wrapped so that the worker can say what is alive in it.

Standard library only, with the project's standard-library await-chain walk (``ws_leakcheck.awaitchain``):
it runs in the server's interpreter, which imports it as ``helpers.stack.reporter``.
The server imports the factory, which reads three environment variables:

* ``LAB_APP``: the real app, ``"module:attribute"``;
* ``LAB_REPORT_SOCKET``: a Unix socket path where a thread answers one request per connection, in the
  observers' message format (``ws_leakcheck.wire``): ``{"op": "report"}`` gets the report, then the
  connection closes;
* ``LAB_WATCH``: comma-separated function names whose live coroutines are counted (optional).

    uvicorn --factory helpers.stack.reporter:from_environment ...
    hypercorn 'helpers.stack.reporter:from_environment()' ...

The report counts, for this process: WebSocket handlers running now (an ASGI call for a
``websocket`` scope that has not returned), WebSockets opened and ended (and how: "returned" or the
exception's name), messages the app sent, the sends waiting now (called, not yet returned),
the close codes the app's receive was given, and the live coroutines of each watched function
(counted on the server's loop, walking every task's await chain).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ws_leakcheck import wire
from ws_leakcheck.awaitchain import between_steps, chain_codes
from ws_leakcheck.connections import Connections
from ws_leakcheck.owner_only import OwnerOnly

ON_LOOP_TIMEOUT = 2.0
REQUEST_TIMEOUT = 5.0
"""Seconds the reporter waits for an asker's request line before it drops the connection."""


class Reported:
    """An ASGI app that counts what the app it wraps is doing (``ws_leakcheck.connections``), and answers on a Unix
    socket."""

    def __init__(self, app: Callable[..., Any], report_socket: str, watch: tuple[str, ...] = ()) -> None:
        self.app = app
        self.watch = watch
        self.loop: asyncio.AbstractEventLoop | None = None
        self.counts = Connections()
        self._counted = self.counts.wrap(app)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(report_socket)
        self._listener.listen(16)
        self._answering = threading.Thread(target=self._answer_forever, name="lab-reporter", daemon=True)
        self._answering.start()

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        self.loop = asyncio.get_running_loop()
        await self._counted(scope, receive, send)

    def report(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "t": time.monotonic(),
            "handlers": len(self.counts.live),
            "opened": self.counts.opened,
            "ended": self.counts.ended,
            "sends": self.counts.sends,
            "sending": self.counts.sending,
            "endings": dict(self.counts.endings),
            "close_codes": list(self.counts.close_codes),
            "alive": self._alive(),
        }

    def _alive(self) -> dict[str, int]:
        """Counted on the server's loop, between two steps, where every await chain is complete."""
        counts = dict.fromkeys(self.watch, 0)
        loop = self.loop
        if not self.watch or loop is None or loop.is_closed():
            return counts

        def count_there() -> dict[str, int]:
            for task in asyncio.all_tasks(loop):
                names = {code.co_name for code in chain_codes(task.get_coro())}
                for name in self.watch:
                    counts[name] += name in names
            return counts

        try:
            return between_steps(loop, count_there, ON_LOOP_TIMEOUT)
        except (RuntimeError, concurrent.futures.TimeoutError):
            return dict.fromkeys(self.watch, -1)  # the loop did not answer: unknown, not zero

    def close(self) -> None:
        """Stop answering (a worker process's reporter ends with its process; a test's ends here)."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread's accept()
        self._listener.close()
        self._answering.join(ON_LOOP_TIMEOUT + REQUEST_TIMEOUT)

    def answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return self.report() if request.get("op") == "report" else wire.unknown(request)

    def _answer_forever(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(REQUEST_TIMEOUT)
                try:
                    request = wire.decode(connection.makefile("rb").readline())
                    connection.sendall(wire.encode(wire.answered(request, self.answer)).encode())
                except (OSError, ValueError):
                    continue  # an asker that left, or sent no request: nobody to answer


def from_environment() -> OwnerOnly:
    """The app named by ``LAB_APP``, wrapped (see the module's docstring), and refused to other users
    of this machine (``ws_leakcheck.owner_only``)."""
    module_name, _, attribute = os.environ["LAB_APP"].partition(":")
    app = getattr(importlib.import_module(module_name), attribute)
    watch = tuple(name for name in os.environ.get("LAB_WATCH", "").split(",") if name)
    return OwnerOnly(Reported(app, os.environ["LAB_REPORT_SOCKET"], watch))


def read_report(path: str, timeout: float = 30.0) -> dict[str, Any]:
    """Ask a worker's reporter for its report (from any process). ``timeout`` bounds a worker that stopped
    answering; a busy one answers late (its reporter's thread waits for the GIL behind the loop's sends)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(wire.encode({"op": "report"}).encode())
        answer = wire.decode(sock.makefile("rb").readline())
    if "error" in answer:
        raise RuntimeError(f"the worker's reporter could not answer: {answer['message']}")
    return answer
