"""The endpoint shapes that leak on today's stack, as notebook 03 shows them (a test keeps them in step)."""

import asyncio

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()

# Waiting on a feed.
subscribers: set[asyncio.Queue] = set()


@app.websocket("/ws/prices")
async def prices(websocket: WebSocket):
    await websocket.accept()
    queue = asyncio.Queue()
    subscribers.add(queue)
    try:
        while True:
            price = await queue.get()
            await websocket.send_json(price)
    except WebSocketDisconnect:
        pass
    finally:
        subscribers.discard(queue)


async def publish(price: dict) -> None:
    for queue in subscribers:
        queue.put_nowait(price)


# A low-frequency sender.
HEARTBEAT_INTERVAL = 3.0


@app.websocket("/ws/heartbeat")
async def heartbeat(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            await websocket.send_json({"alive": True})
            await asyncio.sleep(HEARTBEAT_INTERVAL)
    except WebSocketDisconnect:
        pass


# An orphaned task.
KEEP_WARM_INTERVAL = 3.0
background_tasks: set[asyncio.Task] = set()


async def keep_warm(websocket: WebSocket) -> None:
    while True:
        await asyncio.sleep(KEEP_WARM_INTERVAL)
        await websocket.send_json({"type": "keep-warm"})


@app.websocket("/ws/alerts")
async def alerts(websocket: WebSocket):
    await websocket.accept()
    background_tasks.add(asyncio.create_task(keep_warm(websocket)))
    async for message in websocket.iter_text():
        await websocket.send_text(f"ack: {message}")


# A registry without `finally`, and a naive broadcast.
connected: list[WebSocket] = []


@app.websocket("/ws/chat")
async def chat(websocket: WebSocket):
    await websocket.accept()
    connected.append(websocket)
    try:
        while True:
            text = await websocket.receive_text()
            for other in connected:
                await other.send_text(text)
    except WebSocketDisconnect:
        pass


# FastAPI's documented connection manager (docs: "WebSockets", "Handling disconnections and multiple clients").
class ConnectionManager:
    def __init__(self):
        self.active_connections: list[WebSocket] = []

    async def connect(self, websocket: WebSocket):
        await websocket.accept()
        self.active_connections.append(websocket)

    def disconnect(self, websocket: WebSocket):
        self.active_connections.remove(websocket)

    async def send_personal_message(self, message: str, websocket: WebSocket):
        await websocket.send_text(message)

    async def broadcast(self, message: str):
        for connection in self.active_connections:
            await connection.send_text(message)


manager = ConnectionManager()


@app.websocket("/ws/room/{client_id}")
async def room(websocket: WebSocket, client_id: int):
    await manager.connect(websocket)
    try:
        while True:
            data = await websocket.receive_text()
            await manager.send_personal_message(f"You wrote: {data}", websocket)
            await manager.broadcast(f"Client #{client_id} says: {data}")
    except WebSocketDisconnect:
        manager.disconnect(websocket)
        await manager.broadcast(f"Client #{client_id} left the chat")


# Catching the disconnect and carrying on.
STREAM_INTERVAL = 0.01


@app.websocket("/ws/stubborn")
async def stubborn(websocket: WebSocket):
    await websocket.accept()
    while True:
        try:
            await websocket.send_json({"cpu": 22.4, "memory": 65.1})
        except Exception:
            pass  # "one failed send must not kill the stream"
        await asyncio.sleep(STREAM_INTERVAL)
