"""Redis's own view (``--redis URL``): the subscriptions and clients Redis holds, read from the checker's side.

The checker reads it where it reads its other evidence: before the clients connect and once they left. What the
departed sessions left is the growth: subscriptions (``PUBSUB NUMSUB`` of every channel in ``PUBSUB CHANNELS``,
plus ``PUBSUB NUMPAT``) and clients (``CLIENT LIST``, without the checker's own connection). It uses redis-py
synchronously, in the lab's interpreter: the agent that runs inside the server stays standard-library only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ws_leakcheck.errors import UsageError
from ws_leakcheck.evidence import REDIS_CLIENTS, REDIS_SUBSCRIPTIONS

CONNECT_TIMEOUT = 3.0
ANSWER_TIMEOUT = 5.0


class RedisStopped(Exception):
    """Redis stopped answering during the check (it answered at the start): the checker's failure, not a verdict."""


def shown(url: str) -> str:
    """The URL as reports and messages show it: a password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisView:
    """One connection to Redis, kept for the whole run (so that it is left out of ``CLIENT LIST`` by its id)."""

    def __init__(self, url: str) -> None:
        self.url = shown(url)
        try:
            import redis
        except ImportError:
            raise UsageError("--redis needs the redis package in the checker's Python (pip install redis).") from None
        self.client: Any = None
        try:
            # A single connection, opened here: its id is the one CLIENT LIST leaves out.
            self.client = redis.Redis.from_url(
                url, single_connection_client=True, decode_responses=True,
                socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=ANSWER_TIMEOUT,
            )
            self.own_id = int(self.client.client_id())
            self.read()
        except ValueError as error:  # not a redis://, rediss:// or unix:// URL
            raise UsageError(f"--redis {self.url!r} is not a Redis URL ({error}); give one such as "
                           "redis://127.0.0.1:6379/0 or unix:///path/redis.sock.") from None
        except redis.RedisError as error:
            self.close()
            reason = str(error).rstrip(".").replace(". ", ": ") or type(error).__name__
            raise UsageError(f"Could not read Redis at {self.url} ({reason}): start it, or give --redis the URL it "
                           "listens on.") from None

    def read(self) -> dict[str, int]:
        """What Redis holds now: subscriptions (channels' subscribers and patterns) and clients, the checker's not
        counted."""
        client = self.client
        channels = client.pubsub_channels()
        subscribers = sum(int(n) for _, n in client.pubsub_numsub(*channels)) if channels else 0
        patterns = int(client.pubsub_numpat())
        clients = sum(1 for c in client.client_list() if int(c["id"]) != self.own_id)
        return {REDIS_SUBSCRIPTIONS: subscribers + patterns, REDIS_CLIENTS: clients}

    def reading(self) -> dict[str, int]:
        """``read()`` during the check: Redis gone now is the checker's failure to measure, never a verdict."""
        import redis

        try:
            return self.read()
        except redis.RedisError as error:
            raise RedisStopped(f"Redis at {self.url} stopped answering during the check ({error})") from None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
