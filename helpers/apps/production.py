"""Endpoints for the production lessons, served by real worker processes (``helpers.stack.workers``).

Workers import this module, so every endpoint here is what a deployed app would run: a feed
each worker publishes to over HTTP, the leaky feed-waiter and the same handler with the pattern,
the article's send loop, an endpoint that only receives, and a registry that the app's lifespan
shutdown closes with a code the clients can see.
"""

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from helpers.pattern import run_with_receiver

SHUTDOWN_CLOSE_CODE = 1012  # "Service Restart" in IANA's WebSocket close code registry
registered: set[WebSocket] = set()
subscribers: set[asyncio.Queue] = set()


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    # Shutdown: tell every registered client why it is being closed.
    for websocket in list(registered):
        try:
            await websocket.close(SHUTDOWN_CLOSE_CODE, "server restarting")
        except Exception:  # already gone: nothing to tell
            continue


app = FastAPI(lifespan=lifespan)


@app.post("/publish")
async def publish(price: dict) -> dict:
    """Put ``price`` on this worker's feed; answers with the number of queues it reached."""
    for queue in subscribers:
        queue.put_nowait(price)
    return {"queues": len(subscribers)}


# Waiting on a feed, never receiving (the leak of notebook 03).
@app.websocket("/ws/prices")
async def prices(websocket: WebSocket):
    await websocket.accept()
    queue = asyncio.Queue()
    subscribers.add(queue)
    try:
        while True:
            await websocket.send_json(await queue.get())
    except WebSocketDisconnect:
        pass
    finally:
        subscribers.discard(queue)


# The same feed with the pattern: a receive always running beside the sender.
async def forward(queue: asyncio.Queue, websocket: WebSocket) -> None:
    while True:
        await websocket.send_json(await queue.get())


@app.websocket("/ws/prices-fixed")
async def prices_fixed(websocket: WebSocket):
    await websocket.accept()
    queue = asyncio.Queue()
    subscribers.add(queue)
    try:
        await run_with_receiver(websocket, forward(queue, websocket))
    finally:
        subscribers.discard(queue)


# The leaky feed-waiter, registered so that the lifespan shutdown can close it.
@app.websocket("/ws/prices-registered")
async def prices_registered(websocket: WebSocket):
    await websocket.accept()
    queue = asyncio.Queue()
    subscribers.add(queue)
    registered.add(websocket)
    try:
        while True:
            await websocket.send_json(await queue.get())
    except WebSocketDisconnect:
        pass
    finally:
        subscribers.discard(queue)
        registered.discard(websocket)


# The article's loop: a send every 0.1 s, nothing else.
METRICS_INTERVAL = 0.1


@app.websocket("/ws/metrics")
async def metrics(websocket: WebSocket):
    await websocket.accept()
    while True:
        await websocket.send_json({"cpu": 22.4, "memory": 65.1})
        await asyncio.sleep(METRICS_INTERVAL)


# Only receives: a healthy client that says nothing keeps it idle in both directions.
@app.websocket("/ws/echo")
async def echo(websocket: WebSocket):
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)
