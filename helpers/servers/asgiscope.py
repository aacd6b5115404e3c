"""Reading the ``scope["asgi"]`` a server really sends (standard library only).

``ScopeReporter`` wraps the app. A WebSocket connection to ``SCOPE_PATH`` never reaches the
app: the wrapper accepts it, sends the server's ``scope["asgi"]`` as one JSON text message and
closes. Every other connection goes to the app untouched. The lab connects there once, with
a real client, to learn the ``spec_version`` each server declares for WebSocket scopes (HTTP
scopes carry their own, different, spec version). daphne's subprocess uses the same wrapper.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

SCOPE_PATH = "/__lab__/asgi-scope"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ScopeReporter:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope.get("path") == SCOPE_PATH:
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": json.dumps(dict(scope.get("asgi", {})))})
            await send({"type": "websocket.close", "code": 1000})
            return
        await self.app(scope, receive, send)

