"""A Redis pub/sub feed, subscribed per WebSocket connection in three versions, and through broadcaster.

Each per-connection version uses its own channel and its own Redis client name (the version and the
worker's pid), so that one worker can serve all three and Redis itself (``PUBSUB NUMSUB``,
``CLIENT LIST``) tells the versions and the workers apart. The fourth version subscribes through
broadcaster, which holds one Redis connection per process (unnamed) and one in-process
queue per subscription; ``GET /broadcaster/queues`` says how many queues the process holds. The
workers find the lab's Redis in ``LAB_REDIS_URL`` (``helpers.stack.start(..., redis=True)`` sets it).
"""

import os
from contextlib import asynccontextmanager

from broadcaster import Broadcast
from fastapi import FastAPI, Request, WebSocket
from redis.asyncio import Redis

from helpers.pattern import run_with_receiver


@asynccontextmanager
async def lifespan(app: FastAPI):
    """broadcaster's Redis connection, one per process, connected at start-up (no name in CLIENT LIST)."""
    app.state.broadcast = Broadcast(os.environ["LAB_REDIS_URL"])
    await app.state.broadcast.connect()
    yield
    await app.state.broadcast.disconnect()


CHANNELS = {"finally": "prices-finally", "bare": "prices-bare", "pattern": "prices-pattern",
            "broadcaster": "prices-broadcaster"}
app = FastAPI(lifespan=lifespan)
_clients: dict[str, Redis] = {}


def redis_client(version: str) -> Redis:
    """One client per version and process, named after both (visible in CLIENT LIST)."""
    if version not in _clients:
        name = f"{version}-{os.getpid()}"
        _clients[version] = Redis.from_url(os.environ["LAB_REDIS_URL"], decode_responses=True, client_name=name)
    return _clients[version]


# Forwards with no receive running; unsubscribes and closes in `finally`.
@app.websocket("/ws/redis-finally")
async def redis_finally(websocket: WebSocket):
    await websocket.accept()
    pubsub = redis_client("finally").pubsub()
    await pubsub.subscribe(CHANNELS["finally"])
    try:
        async for message in pubsub.listen():
            if message["type"] == "message":
                await websocket.send_text(message["data"])
    finally:
        await pubsub.unsubscribe(CHANNELS["finally"])
        await pubsub.aclose()


# The same without `finally`.
@app.websocket("/ws/redis-bare")
async def redis_bare(websocket: WebSocket):
    await websocket.accept()
    pubsub = redis_client("bare").pubsub()
    await pubsub.subscribe(CHANNELS["bare"])
    async for message in pubsub.listen():
        if message["type"] == "message":
            await websocket.send_text(message["data"])


# The pattern: a receive always running beside the forwarder, cleanup in `finally`.
async def relay(pubsub, websocket: WebSocket) -> None:
    async for message in pubsub.listen():
        if message["type"] == "message":
            await websocket.send_text(message["data"])


@app.websocket("/ws/redis-pattern")
async def redis_pattern(websocket: WebSocket):
    await websocket.accept()
    pubsub = redis_client("pattern").pubsub()
    await pubsub.subscribe(CHANNELS["pattern"])
    try:
        await run_with_receiver(websocket, relay(pubsub, websocket))
    finally:
        await pubsub.unsubscribe(CHANNELS["pattern"])
        await pubsub.aclose()


# broadcaster (the library FastAPI's docs point to for a feed across processes), no receive running.
@app.websocket("/ws/redis-broadcaster")
async def redis_broadcaster(websocket: WebSocket):
    await websocket.accept()
    async with websocket.app.state.broadcast.subscribe(channel=CHANNELS["broadcaster"]) as subscriber:
        async for event in subscriber:
            await websocket.send_text(event.message)


# What only the process can count: broadcaster's queues, one per subscription (its private `_subscribers`).
@app.get("/broadcaster/queues")
async def broadcaster_queues(request: Request) -> int:
    return len(request.app.state.broadcast._subscribers.get(CHANNELS["broadcaster"], ()))
