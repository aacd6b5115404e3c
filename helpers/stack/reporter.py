"""Inside each worker process: the app, wrapped so that the worker can say what is alive in it.

Standard library only, with the project's standard-library await-chain walk (``ws_leakcheck.awaitchain``):
it runs in the server's interpreter, which imports it as ``helpers.stack.reporter``.
The server imports the factory, which reads three environment variables:

* ``LAB_APP``: the real app, ``"module:attribute"``;
* ``LAB_REPORT_SOCKET``: a Unix socket path where a thread answers every connection with one
  JSON report and closes it;
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
import importlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from helpers.owner_only import OwnerOnly
from ws_leakcheck.awaitchain import between_steps, chain_codes

ON_LOOP_TIMEOUT = 2.0


class Reported:
    """An ASGI app that counts what the app it wraps is doing, and answers on a Unix socket."""

    def __init__(self, app: Callable[..., Any], report_socket: str, watch: tuple[str, ...] = ()) -> None:
        self.app = app
        self.watch = watch
        self.loop: asyncio.AbstractEventLoop | None = None
        self.live = 0
        self.opened = 0
        self.ended = 0
        self.sends = 0
        self.sending = 0
        self.endings: dict[str, int] = {}
        self.close_codes: list[int] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(report_socket)
        self._listener.listen(16)
        threading.Thread(target=self._answer_forever, name="lab-reporter", daemon=True).start()

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        self.loop = asyncio.get_running_loop()
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return

        async def counted_receive() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if message["type"] == "websocket.disconnect":
                self.close_codes.append(int(message.get("code", 1005)))
            return message

        async def counted_send(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.send":
                self.sends += 1
            self.sending += 1
            try:
                await send(message)
            finally:
                self.sending -= 1

        self.live += 1
        self.opened += 1
        ending = "returned"
        try:
            await self.app(scope, counted_receive, counted_send)
        except BaseException as error:
            ending = type(error).__name__
            raise
        finally:
            self.live -= 1
            self.ended += 1
            self.endings[ending] = self.endings.get(ending, 0) + 1

    def report(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "t": time.monotonic(),
            "handlers": self.live,
            "opened": self.opened,
            "ended": self.ended,
            "sends": self.sends,
            "sending": self.sending,
            "endings": dict(self.endings),
            "close_codes": list(self.close_codes),
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

    def _answer_forever(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                try:
                    connection.sendall(json.dumps(self.report()).encode() + b"\n")
                except OSError:
                    continue


def from_environment() -> OwnerOnly:
    """The app named by ``LAB_APP``, wrapped (see the module's docstring), and refused to other users
    of this machine (``helpers.owner_only``)."""
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
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return dict(json.loads(data))
