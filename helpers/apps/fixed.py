"""The pattern of notebook 04 and the endpoints of notebook 03 rewritten with it (a test keeps them in step)."""

import asyncio

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketDisconnected

from helpers.apps import leaks

def client_gone(error: BaseException) -> bool:
    """True for the errors a send raises once the client has left."""
    return isinstance(error, (WebSocketDisconnect, WebSocketDisconnected)) or (
        isinstance(error, RuntimeError) and "after sending 'websocket.close'" in str(error)
    )

async def run_with_receiver(websocket: WebSocket, *senders, on_message=None) -> None:
    """Run the senders until the client leaves (then cancel them), or until one of them fails."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(sender) for sender in senders]
            async for text in websocket.iter_text():     # the receive that is always running
                if on_message is not None:
                    await on_message(text)
            for task in tasks:
                task.cancel()
    except* Exception as errors:   # a sender noticed first; the group cancelled everything else
        unexpected = errors.subgroup(lambda e: not isinstance(e, ExceptionGroup) and not client_gone(e))
        if unexpected is not None:
            raise unexpected

SEND_TIMEOUT = 0.5

async def broadcast(registry: set, text: str) -> None:
    """Send to every socket at once; drop the ones that are gone or do not keep up."""
    async def deliver(websocket: WebSocket) -> None:
        try:
            await asyncio.wait_for(websocket.send_text(text), SEND_TIMEOUT)
        except Exception as error:
            if not (client_gone(error) or isinstance(error, TimeoutError)):
                raise
            registry.discard(websocket)
    await asyncio.gather(*(deliver(ws) for ws in list(registry)))


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
    try:
        async for text in websocket.iter_text():
            await broadcast(connected, text)
    finally:
        connected.discard(websocket)

members: set[WebSocket] = set()

@app.websocket("/ws/room/{client_id}")
async def room(websocket: WebSocket, client_id: int):
    await websocket.accept()
    members.add(websocket)
    try:
        async for data in websocket.iter_text():
            await websocket.send_text(f"You wrote: {data}")
            await broadcast(members, f"Client #{client_id} says: {data}")
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
