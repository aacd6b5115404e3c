"""Small apps the unit tests serve. The lessons' own endpoints live in helpers/apps."""

import asyncio

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()
disconnect_codes: list[int] = []
hang_forever = asyncio.Event()  # never set


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


@app.websocket("/receiver")
async def receiver(websocket: WebSocket) -> None:
    """Reads until the client leaves and remembers the close code it saw."""
    await websocket.accept()
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect as disconnect:
        disconnect_codes.append(disconnect.code)


@app.websocket("/stuck")
async def stuck(websocket: WebSocket) -> None:
    """Waits on something that never happens and never reads: nothing can end it."""
    await websocket.accept()
    await inner_wait()


async def inner_wait() -> None:
    await asyncio.Event().wait()


@app.websocket("/spawner")
async def spawner(websocket: WebSocket) -> None:
    """Leaves an orphan task behind when its client leaves."""
    await websocket.accept()
    orphans.append(asyncio.create_task(inner_wait()))
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass


orphans: list[asyncio.Task[None]] = []


@app.websocket("/pusher")
async def pusher(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text("x" * 64)
        await asyncio.sleep(0.01)


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}
