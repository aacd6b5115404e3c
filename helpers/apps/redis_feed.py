"""The plumbing of ``helpers.apps.production_redis``: the Redis clients and broadcaster's connection.

Each per-connection version of the endpoint subscribes through a Redis client of its own, named after the
version and the worker's pid, so that Redis's ``CLIENT LIST`` tells the versions and the workers apart.
broadcaster's connection (one per process, unnamed) is opened by the app's lifespan. The workers find the
lab's Redis in ``LAB_REDIS_URL`` (``helpers.stack.start(..., redis=True)`` sets it).
"""

import os
from contextlib import asynccontextmanager

from broadcaster import Broadcast
from fastapi import FastAPI
from redis.asyncio import Redis


@asynccontextmanager
async def lifespan(app: FastAPI):
    """broadcaster's Redis connection, one per process, connected at start-up (no name in CLIENT LIST)."""
    app.state.broadcast = Broadcast(os.environ["LAB_REDIS_URL"])
    await app.state.broadcast.connect()
    yield
    await app.state.broadcast.disconnect()


CHANNELS = {"finally": "prices-finally", "bare": "prices-bare", "pattern": "prices-pattern",
            "broadcaster": "prices-broadcaster"}
_clients: dict[str, Redis] = {}


def redis_client(version: str) -> Redis:
    """One client per version and process, named after both (visible in CLIENT LIST)."""
    if version not in _clients:
        name = f"{version}-{os.getpid()}"
        _clients[version] = Redis.from_url(os.environ["LAB_REDIS_URL"], decode_responses=True, client_name=name)
    return _clients[version]
