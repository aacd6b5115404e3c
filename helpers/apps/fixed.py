"""The endpoints of notebook 03 rewritten with the pattern, as notebook 04 shows them (a test keeps them in step).

The pattern itself lives in ``helpers.pattern``; its names are re-exported here for the notebooks
that imported them from this module first.
"""

import asyncio

from fastapi import FastAPI, WebSocket

from helpers.apps import leaks
from helpers.pattern import SEND_TIMEOUT, broadcast, client_gone, run_with_receiver

__all__ = ["SEND_TIMEOUT", "app", "broadcast", "client_gone", "run_with_receiver"]

app = FastAPI()
subscribers: set[asyncio.Queue] = set()

async def forward(queue: asyncio.Queue, websocket: WebSocket) -> None:
    while True:
        await websocket.send_json(await queue.get())

@app.websocket("/ws/prices")
async def prices(websocket: WebSocket):
    await websocket.accept()
    queue = asyncio.Queue()
    subscribers.add(queue)
    try:
        await run_with_receiver(websocket, forward(queue, websocket))
    finally:
        subscribers.discard(queue)

async def beat(websocket: WebSocket) -> None:
    while True:
        await websocket.send_json({"alive": True})
        await asyncio.sleep(leaks.HEARTBEAT_INTERVAL)

@app.websocket("/ws/heartbeat")
async def heartbeat(websocket: WebSocket):
    await websocket.accept()
    await run_with_receiver(websocket, beat(websocket))

@app.websocket("/ws/alerts")
async def alerts(websocket: WebSocket):
    await websocket.accept()
    async def ack(message: str) -> None:
        await websocket.send_text(f"ack: {message}")
    await run_with_receiver(websocket, leaks.keep_warm(websocket), on_message=ack)


connected: set[WebSocket] = set()

@app.websocket("/ws/chat")
async def chat(websocket: WebSocket):
    await websocket.accept()
    connected.add(websocket)
    async def tell_everyone(text: str) -> None:
        await broadcast(connected, text)
    try:
        await run_with_receiver(websocket, on_message=tell_everyone)
    finally:
        connected.discard(websocket)

members: set[WebSocket] = set()

@app.websocket("/ws/room/{client_id}")
async def room(websocket: WebSocket, client_id: int):
    await websocket.accept()
    members.add(websocket)
    async def say(data: str) -> None:
        await websocket.send_text(f"You wrote: {data}")
        await broadcast(members, f"Client #{client_id} says: {data}")
    try:
        await run_with_receiver(websocket, on_message=say)
    finally:
        members.discard(websocket)
        await broadcast(members, f"Client #{client_id} left the chat")

async def push_metrics(websocket: WebSocket) -> None:
    while True:
        await websocket.send_json({"cpu": 22.4, "memory": 65.1})
        await asyncio.sleep(leaks.STREAM_INTERVAL)

@app.websocket("/ws/stubborn")
async def stream(websocket: WebSocket):
    await websocket.accept()
    await run_with_receiver(websocket, push_metrics(websocket))
