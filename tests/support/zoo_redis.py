"""An endpoint that subscribes to Redis per visitor, for the checker's ``--redis`` tests (the lessons' own Redis
endpoints are in helpers/apps/production_redis.py). It finds Redis in ``LAB_REDIS_URL``, as the lessons' workers do;
check it in a process of its own (``python=``), so that its one Redis client belongs to that check's loop.
"""

import os

from fastapi import FastAPI, WebSocket
from redis.asyncio import Redis

app = FastAPI()
_redis: list[Redis] = []


def redis_client() -> Redis:
    """The app's one Redis client (a pool, which keeps the connections it lent out)."""
    if not _redis:
        _redis.append(Redis.from_url(os.environ["LAB_REDIS_URL"], decode_responses=True))
    return _redis[0]


@app.websocket("/subscribed-and-forgotten")
async def subscribed_and_forgotten(websocket: WebSocket):
    """Subscribes per visitor and receives until the client leaves, so the handler ends; it never unsubscribes nor
    closes the pub/sub, whose connection the pool keeps lent out: Redis keeps the subscription."""
    await websocket.accept()
    pubsub = redis_client().pubsub()
    await pubsub.subscribe("news")
    async for _ in websocket.iter_text():
        pass
