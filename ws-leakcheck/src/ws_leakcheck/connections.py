"""What an ASGI app does with its WebSocket connections, counted by a wrapper around the app (standard library only).

The in-server observers count through it: the checker's agent (``ws_leakcheck.agent``: the sends of each path since
a mark, and the sends blocked in progress, which tell a zombie that keeps sending from a handler stuck in a send) and
the reporter in each worker process of the lab's production stack (``helpers.stack.reporter``: handlers running,
opened and ended, how they ended, the sends, and the close codes the app received). Only the ``websocket`` scope is
counted; every other scope goes to the app untouched.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Counted = Callable[[MutableMapping[str, Any], Receive, Send], Coroutine[Any, Any, None]]


class Connections:
    def __init__(self) -> None:
        self.next_id = 0
        self.live: dict[int, str] = {}
        """Connection -> its path, while the app runs it: the handlers running now."""
        self.opened = 0
        self.ended = 0
        self.endings: dict[str, int] = {}
        """How the handlers ended ("returned", or the class name of what they raised) -> how many."""
        self.sends = 0
        """Every ``websocket.send`` the app made."""
        self.sending = 0
        """Calls to ``send`` in progress now, of any message (an accept or a close can wait too)."""
        self.close_codes: list[int] = []
        """The code of every ``websocket.disconnect`` the app's ``receive`` returned, in order (1005, "no status",
        where it carried none)."""
        self.marked: set[int] = set()
        """The connections open at the last ``mark``: their sends no longer count per path."""
        self.since_mark: dict[str, int] = {}
        """Path -> ``websocket.send`` messages since the mark, of the connections opened since."""
        self.pending: dict[int, float] = {}
        """Connection -> when its ``websocket.send`` in progress started (monotonic)."""

    def wrap(self, app: Any) -> Counted:
        """``app``, counted."""
        counts = self

        async def counted(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
            if scope.get("type") != "websocket":
                await app(scope, receive, send)
                return
            counts.next_id += 1
            conn, path = counts.next_id, str(scope.get("path", ""))
            counts.live[conn] = path
            counts.opened += 1

            async def counted_receive() -> Message:
                message = await receive()
                if message.get("type") == "websocket.disconnect":
                    code = message.get("code")  # daphne passes None on a close frame without a code
                    counts.close_codes.append(code if isinstance(code, int) else 1005)
                return message

            async def counted_send(message: Message) -> None:
                websocket_send = message.get("type") == "websocket.send"
                if websocket_send:
                    counts.sends += 1
                    if conn not in counts.marked:
                        counts.since_mark[path] = counts.since_mark.get(path, 0) + 1
                    counts.pending[conn] = time.monotonic()
                counts.sending += 1
                try:
                    await send(message)
                finally:
                    counts.sending -= 1
                    if websocket_send:
                        counts.pending.pop(conn, None)

            ending = "returned"
            try:
                await app(scope, counted_receive, counted_send)
            except BaseException as error:
                ending = type(error).__name__
                raise
            finally:
                counts.live.pop(conn, None)
                counts.pending.pop(conn, None)
                counts.ended += 1
                counts.endings[ending] = counts.endings.get(ending, 0) + 1

        return counted

    def mark(self) -> None:
        """From now on, count per path only the sends of connections opened after this."""
        self.marked = set(self.live)
        self.since_mark = {}

    def read(self, paths: list[str], blocked_after: float = 0.5) -> dict[str, list[int]]:
        """Path -> [sends since the mark, connections opened since the mark that have been in one send for
        ``blocked_after`` s or more]. A path may carry a query (``/ws?room=1``): it counts as its bare path."""
        now = time.monotonic()
        blocked: dict[str, int] = {}
        for conn, since in list(self.pending.items()):
            path = self.live.get(conn)
            if path is not None and conn not in self.marked and now - since >= blocked_after:
                blocked[path] = blocked.get(path, 0) + 1
        found = {}
        for path in paths:
            bare = path.partition("?")[0]
            found[path] = [self.since_mark.get(bare, 0), blocked.get(bare, 0)]
        return found
