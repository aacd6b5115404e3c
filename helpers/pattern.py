"""The pattern notebook 04 teaches: what to copy into your own FastAPI (or Starlette) code.

A handler learns that its client left only by *receiving*: the server turns the client's close
(or a dead TCP connection) into a ``websocket.disconnect`` message, and only a receive reads it.
So every endpoint keeps a receive running for the whole connection (``run_with_receiver``), runs
whatever sends beside it in one task group, unregisters in ``finally``, and fans out through
``broadcast``, which a dead or slow socket cannot stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected


def client_gone(error: BaseException) -> bool:
    """True for the errors a send raises once the client has left.

    Starlette raises ``WebSocketDisconnect`` when the server reports the connection lost, and
    ``WebSocketDisconnected`` once the app itself has closed it. uvicorn raises a plain
    ``RuntimeError`` ("... after sending 'websocket.close'") in the moment after it closed the
    connection itself (a keepalive ping that timed out) and before the TCP connection is gone.
    """
    return isinstance(error, (WebSocketDisconnect, WebSocketDisconnected)) or (
        isinstance(error, RuntimeError) and "after sending 'websocket.close'" in str(error)
    )


async def run_with_receiver(
    websocket: WebSocket,
    *senders: Coroutine[Any, Any, None],
    on_message: Callable[[str], Awaitable[None]] | None = None,
) -> None:
    """Receive until the client leaves, with the ``senders`` running beside the receive.

    When the client leaves, the receive ends and the senders are cancelled. When a sender fails
    first (its send found the client gone), the task group cancels the receive. Either way this
    returns only when nothing started here is still running. An error that does not mean "the
    client is gone" is raised again, so a real bug still reaches the server's log.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(sender) for sender in senders]
            async for text in websocket.iter_text():     # the receive that is always running
                if on_message is not None:
                    await on_message(text)
            for task in tasks:
                task.cancel()
    except* Exception as errors:   # a sender noticed first; the group cancelled everything else
        unexpected = errors.subgroup(lambda e: not isinstance(e, ExceptionGroup) and not client_gone(e))
        if unexpected is not None:
            raise unexpected


SEND_TIMEOUT = 0.5
"""Seconds a socket gets to take one broadcast message before it is dropped."""
CLOSE_TIMEOUT = 5.0
"""Seconds a dropped socket's close frame gets to be written (it queues behind what the socket has not read)."""
TOO_SLOW = 1013
"""The close code a dropped slow client receives: "Try Again Later" in the IANA WebSocket close code
registry, for a server "casting off some of its clients" under a temporary condition (RFC 6455's own
1008 "policy violation" is about a message the endpoint received, which is not the case here)."""

_closing: set[asyncio.Task[None]] = set()
"""Close frames being written to dropped slow sockets (referenced here so that none is garbage-collected)."""


async def _close_too_slow(websocket: WebSocket) -> None:
    try:
        await asyncio.wait_for(websocket.close(TOO_SLOW, "too slow"), CLOSE_TIMEOUT)
    except Exception as error:
        if not (client_gone(error) or isinstance(error, TimeoutError)):
            raise


async def broadcast(registry: set[WebSocket], text: str) -> None:
    """Send ``text`` to every socket in ``registry`` at once; return within about ``SEND_TIMEOUT``.

    A socket whose client is gone is removed. A socket that does not take the message within
    ``SEND_TIMEOUT`` (its client does not read fast enough, and the buffers in between are full)
    is removed and closed with code ``TOO_SLOW`` and the reason "too slow", so that its client
    hears why once it reads again, instead of staying connected and never hearing anything.
    That close frame waits behind what the client has not read, so it is written by a task of
    its own, which gives up after ``CLOSE_TIMEOUT``: the next broadcast never waits for it.
    The other sockets are never held up: every send runs at the same time.
    """
    async def deliver(websocket: WebSocket) -> None:
        try:
            await asyncio.wait_for(websocket.send_text(text), SEND_TIMEOUT)
        except TimeoutError:
            registry.discard(websocket)
            closing = asyncio.create_task(_close_too_slow(websocket))
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)
        except Exception as error:
            if not client_gone(error):
                raise
            registry.discard(websocket)
    await asyncio.gather(*(deliver(ws) for ws in list(registry)))
