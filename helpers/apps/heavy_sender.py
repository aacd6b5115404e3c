"""A heavy sender for notebook 11, served by real worker processes (``helpers.stack.workers``).

A feed that pushes 512 KiB to each client every 0.05 s: as is, with a timeout around each send,
and with that timeout and notebook 04's pattern (a receive always running beside the sender).
"""

import asyncio

from fastapi import FastAPI, WebSocket

from helpers.pattern import run_with_receiver

app = FastAPI()

CHUNK = bytes(512 * 1024)    # 512 KiB per message
SEND_EVERY = 0.05            # seconds between two messages: 10 MiB/s per client
SEND_TIMEOUT = 2.0           # seconds one send may wait for its client to read


@app.websocket("/ws/firehose")
async def firehose(websocket: WebSocket):
    await websocket.accept()
    while True:
        await websocket.send_bytes(CHUNK)
        await asyncio.sleep(SEND_EVERY)


async def push(websocket: WebSocket) -> None:
    while True:
        async with asyncio.timeout(SEND_TIMEOUT):   # TimeoutError: the client read nothing meanwhile
            await websocket.send_bytes(CHUNK)
        await asyncio.sleep(SEND_EVERY)


@app.websocket("/ws/firehose-bounded")
async def firehose_bounded(websocket: WebSocket):
    await websocket.accept()
    try:
        await push(websocket)
    except TimeoutError:
        return  # give up on this client


@app.websocket("/ws/firehose-fixed")
async def firehose_fixed(websocket: WebSocket):
    await websocket.accept()
    try:
        await run_with_receiver(websocket, push(websocket))   # a receive always running beside the sender
    except* TimeoutError:
        pass  # give up on this client
