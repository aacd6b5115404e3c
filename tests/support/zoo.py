"""Endpoints a learner might write, for the leak checker's tests. Each says what it is."""

import asyncio
import os

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()

# Leaking variants.
never = asyncio.Event()


@app.websocket("/event-waiter")
async def event_waiter(websocket: WebSocket):
    """Waits for a shutdown event that never comes; catches the disconnect it never sees."""
    await websocket.accept()
    try:
        await never.wait()
    except WebSocketDisconnect:
        pass


@app.websocket("/sleeper")
async def sleeper(websocket: WebSocket):
    """'Keeps the socket open' by sleeping."""
    await websocket.accept()
    await asyncio.sleep(3600)


sessions: dict[int, WebSocket] = {}


@app.websocket("/dict-registry")
async def dict_registry(websocket: WebSocket):
    """Registers by id, forgets to unregister."""
    await websocket.accept()
    sessions[id(websocket)] = websocket
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass


pumps: list[asyncio.Task] = []
feed: asyncio.Queue = asyncio.Queue()


async def pump(websocket: WebSocket) -> None:
    while True:
        await websocket.send_text(await feed.get())


@app.websocket("/ensure-future-orphan")
async def ensure_future_orphan(websocket: WebSocket):
    """A pump started with ensure_future and never cancelled."""
    await websocket.accept()
    pumps.append(asyncio.ensure_future(pump(websocket)))
    try:
        async for _ in websocket.iter_text():
            pass
    except WebSocketDisconnect:
        pass


@app.websocket("/retry-receive")
async def retry_receive(websocket: WebSocket):
    """Retries a failed receive forever."""
    await websocket.accept()
    while True:
        try:
            await websocket.receive_text()
        except Exception:
            await asyncio.sleep(0.05)


# Noisy variants: nothing survives, but disconnects raise unhandled exceptions.
@app.websocket("/receive-no-try")
async def receive_no_try(websocket: WebSocket):
    await websocket.accept()
    while True:
        await websocket.receive_text()


@app.websocket("/send-no-try")
async def send_no_try(websocket: WebSocket):
    await websocket.accept()
    while True:
        await websocket.send_text("tick")
        await asyncio.sleep(0.05)


# Clean variants.
@app.websocket("/echo")
async def echo(websocket: WebSocket):
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


@app.websocket("/receive-with-except")
async def receive_with_except(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass


@app.websocket("/closes-itself")
async def closes_itself(websocket: WebSocket):
    await websocket.accept()
    await websocket.close()


@app.websocket("/sender-with-watcher")
async def sender_with_watcher(websocket: WebSocket):
    """A sender cancelled by a receive watcher, written with create_task and finally."""
    await websocket.accept()

    async def send_forever() -> None:
        while True:
            await websocket.send_text("tick")
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(send_forever())
    try:
        async for _ in websocket.iter_text():
            pass
    finally:
        sender.cancel()
        try:
            await sender
        except (asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            pass


# A connection to another service (a database, a broker) opened per visitor. The address comes from
# LEAKCHECK_ZOO_UPSTREAM ("host:port"), set by the test that starts that service. ``_lent`` stands for a client
# library's own bookkeeping (redis-py's pool keeps the connections it lent out): private, so the checker's
# other evidence does not see it; only the open connections show.
_lent: set[asyncio.BaseTransport] = set()


async def _connect_upstream() -> asyncio.Transport:
    host, _, port = os.environ["LEAKCHECK_ZOO_UPSTREAM"].rpartition(":")
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, host, int(port))
    _lent.add(transport)
    return transport


@app.websocket("/upstream-per-visitor")
async def upstream_per_visitor(websocket: WebSocket):
    """Opens a connection upstream per visitor and forwards to it; never closes it when the client leaves."""
    await websocket.accept()
    upstream = await _connect_upstream()
    try:
        async for text in websocket.iter_text():
            upstream.write(text.encode())
    except WebSocketDisconnect:
        pass


@app.websocket("/upstream-closed-in-finally")
async def upstream_closed_in_finally(websocket: WebSocket):
    """The same, closing its upstream connection in `finally`."""
    await websocket.accept()
    upstream = await _connect_upstream()
    try:
        async for text in websocket.iter_text():
            upstream.write(text.encode())
    finally:
        upstream.close()
        _lent.discard(upstream)



# A sender that never receives, with chunks large enough to fill the sockets' buffers within a second: a client
# that stays connected but stops reading leaves its send blocked (uvicorn waits for the transport to drain). The
# chunk is random bytes, which permessage-deflate cannot shrink.
CHUNK = os.urandom(256 * 1024)


@app.websocket("/flood")
async def flood(websocket: WebSocket):
    """Sends 256 KiB every 0.02 s and never receives."""
    await websocket.accept()
    while True:
        await websocket.send_bytes(CHUNK)
        await asyncio.sleep(0.02)
