"""A FastAPI project's app, as a team writes it: it imports its own `helpers` package."""

import asyncio
import json

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from helpers.auth import is_valid_token

app = FastAPI()
feed = asyncio.Event()  # set when there is news; never, here


@app.websocket("/ws/notifications")
async def notifications(websocket: WebSocket):
    """Waits on the feed, never on the client: it never learns the client left."""
    await websocket.accept()
    while True:
        await feed.wait()
        await websocket.send_text("news")


@app.websocket("/ws/notifications-fixed")
async def notifications_fixed(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass


@app.websocket("/ws/secure-feed")
async def secure_feed(websocket: WebSocket):
    """A query token, then a hello message; what follows the hello waits on the feed only."""
    if not is_valid_token(websocket.query_params.get("token")):
        await websocket.close(code=1008)
        return
    await websocket.accept()
    hello = json.loads(await websocket.receive_text())
    if hello.get("type") != "hello":
        await websocket.close(code=1008)
        return
    await websocket.send_text("welcome")
    await feed.wait()


class ConnectionManager:
    """FastAPI's documented chat manager."""

    def __init__(self):
        self.active_connections: list[WebSocket] = []

    async def connect(self, websocket: WebSocket):
        await websocket.accept()
        self.active_connections.append(websocket)

    def disconnect(self, websocket: WebSocket):
        self.active_connections.remove(websocket)

    async def broadcast(self, message: str):
        for connection in self.active_connections:
            await connection.send_text(message)


manager = ConnectionManager()


@app.websocket("/ws/chat")
async def chat(websocket: WebSocket):
    """Catches the disconnect around its receive; its except block then broadcasts to peers that left too."""
    await manager.connect(websocket)
    try:
        while True:
            await manager.broadcast(await websocket.receive_text())
    except WebSocketDisconnect:
        manager.disconnect(websocket)
        await manager.broadcast("a client left the chat")
