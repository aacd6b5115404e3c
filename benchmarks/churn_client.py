"""Churn WebSocket sessions against a URL and print sessions per second: ``python -m benchmarks.churn_client URL N C``.

Each session opens a real connection, waits for the handshake, and closes cleanly; C sessions run at once.
"""

from __future__ import annotations

import asyncio
import sys
import time

from websockets.asyncio.client import connect


async def churn(url: str, sessions: int, concurrency: int) -> float:
    """Return sessions per second."""
    limit = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with limit:
            connection = await connect(url, ping_interval=None, open_timeout=10)
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(sessions)))
    return sessions / (time.perf_counter() - started)


if __name__ == "__main__":
    url, n, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(f"{asyncio.run(churn(url, n, c)):.1f}")
