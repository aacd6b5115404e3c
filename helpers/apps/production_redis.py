"""A Redis pub/sub feed, subscribed per WebSocket connection in three versions, and through broadcaster.

Each per-connection version uses its own channel and its own Redis client name (the version and the
worker's pid), so that one worker can serve all three and Redis itself (``PUBSUB NUMSUB``,
``CLIENT LIST``) tells the versions and the workers apart. The fourth version subscribes through
broadcaster, which holds one Redis connection per process (unnamed) and one in-process
queue per subscription; ``GET /broadcaster/queues`` says how many queues the process holds. The Redis
clients and broadcaster's connection are ``helpers.apps.redis_feed``'s.
"""

from fastapi import FastAPI, Request, WebSocket

from helpers.apps.redis_feed import CHANNELS, lifespan, redis_client
from helpers.pattern import run_with_receiver

app = FastAPI(lifespan=lifespan)


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
