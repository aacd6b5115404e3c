"""The pattern notebook 04 teaches: what to copy into your own FastAPI (or Starlette) code.

A handler learns that its client left by *receiving* (the server turns the client's close, or a
lost TCP connection, into a ``websocket.disconnect`` message, and only a receive reads it), or, on
a server that implements ASGI spec 2.4 such as uvicorn, from a send that fails. A send can be far
off, and on other servers it never fails. So every endpoint keeps a receive running for the whole
connection (``run_with_receiver``), runs whatever sends beside it in one task group, unregisters
in ``finally``, and fans out through ``broadcast``, which a dead or slow socket cannot stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from weakref import WeakKeyDictionary

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

SEND_TIMEOUT = 0.5
"""Seconds a socket gets to take one broadcast message before it is dropped."""
CLOSE_TIMEOUT = 5.0
"""Seconds a dropped socket's close frame gets to be written (it queues behind what the socket has not read)."""
DROPPED_WITHIN = SEND_TIMEOUT + CLOSE_TIMEOUT
"""Seconds from a broadcast to the end of the handler of a client it dropped as too slow (when that handler
receives through ``run_with_receiver``): the send's time limit, then the close frame's."""
TOO_SLOW = 1013
"""The close code a dropped slow client receives: "Try Again Later" in the IANA WebSocket close code
registry, for a server "casting off some of its clients" under a temporary condition (RFC 6455's own
1008 "policy violation" is about a message the endpoint received, which is not the case here)."""


class Dropped(Exception):
    """``broadcast`` gave up on this handler's client as too slow: ``run_with_receiver`` ends, quietly."""


def client_gone(error: BaseException) -> bool:
    """True for the errors that mean the client is gone, or was dropped: the end of a connection, not a bug.

    Starlette raises ``WebSocketDisconnect`` when the server reports the connection lost, and
    ``WebSocketDisconnected`` once the app itself has closed it. uvicorn raises a plain
    ``RuntimeError`` ("... after sending 'websocket.close'") in the moment after it closed the
    connection itself (a keepalive ping that timed out) and before the TCP connection is gone.
    ``Dropped`` is the pattern's own: ``broadcast`` gave up on a client too slow to keep up.
    """
    return isinstance(error, (WebSocketDisconnect, WebSocketDisconnected, Dropped)) or (
        isinstance(error, RuntimeError) and "after sending 'websocket.close'" in str(error)
    )


_drops: WeakKeyDictionary[WebSocket, asyncio.Event] = WeakKeyDictionary()
"""Per socket, set once ``broadcast`` has given up on it (forgotten with the socket)."""


def _drop_signal(websocket: WebSocket) -> asyncio.Event:
    return _drops.setdefault(websocket, asyncio.Event())


async def _until_dropped(websocket: WebSocket) -> None:
    await _drop_signal(websocket).wait()
    raise Dropped()


async def run_with_receiver(
    websocket: WebSocket,
    *senders: Coroutine[Any, Any, None],
    on_message: Callable[[str], Awaitable[None]] | None = None,
) -> None:
    """Receive until the client leaves, with the ``senders`` running beside the receive.

    Each text message received is passed to ``on_message``. When the client leaves, the receive
    ends and the senders are cancelled. When a sender fails first (its send found the client
    gone), the task group cancels the receive. When ``broadcast`` drops this client as too slow,
    everything here is cancelled too, at most ``DROPPED_WITHIN`` seconds after that broadcast,
    whatever the client does. Either way this returns only when nothing started here is still
    running. An error that does not mean "the client is gone" is raised again, so a real bug
    still reaches the server's log.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(sender) for sender in senders]
            tasks.append(group.create_task(_until_dropped(websocket)))
            async for text in websocket.iter_text():     # the receive that is always running
                if on_message is not None:
                    await on_message(text)
            for task in tasks:
                task.cancel()
    except* Exception as errors:   # a sender noticed first, or the client was dropped; the group cancelled the rest
        unexpected = errors.subgroup(lambda e: not isinstance(e, ExceptionGroup) and not client_gone(e))
        if unexpected is not None:
            raise unexpected


_closing: set[asyncio.Task[None]] = set()
"""Close frames being written to dropped slow sockets (referenced here so that none is garbage-collected)."""


async def _close_too_slow(websocket: WebSocket) -> None:
    """Close with ``TOO_SLOW``, giving the close frame ``CLOSE_TIMEOUT``; then end the socket's handler."""
    try:
        await asyncio.wait_for(websocket.close(TOO_SLOW, "too slow"), CLOSE_TIMEOUT)
    except Exception as error:
        if not (client_gone(error) or isinstance(error, TimeoutError)):
            raise
    finally:
        _drop_signal(websocket).set()


async def broadcast(registry: set[WebSocket], text: str) -> None:
    """Send ``text`` to every socket in ``registry`` at once; return within about ``SEND_TIMEOUT``.

    A socket whose client is gone is removed. A socket that does not take the message within
    ``SEND_TIMEOUT`` (its client does not read fast enough, and the buffers in between are full)
    is dropped: removed from ``registry`` at once, then closed with code ``TOO_SLOW`` and the reason
    "too slow" by a task of its own, so the next broadcast never waits for it. That close frame
    queues behind what the client has not read, so it gets ``CLOSE_TIMEOUT`` seconds. Then, written
    or not, the dropped socket's ``run_with_receiver`` ends, so its handler ends within
    ``DROPPED_WITHIN`` seconds of this broadcast (a handler that receives some other way is not
    reached). What the client then sees when it reads again depends on the server: notebook 04
    measures it. The other sockets are never held up: every send runs at the same time.

    The drop rests on a send that waits when the client stops reading, and the removal of a gone
    socket on a send that raises. hypercorn, granian and daphne drop a send to a gone client
    silently: there only the handler's ``finally`` removes its socket. On daphne a send never waits
    (Twisted keeps what it cannot write yet): no socket is ever too slow there, nothing is dropped,
    and what a client has not read grows in the server's memory.
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
