"""The seed article's metrics stream: the broken endpoint and its proposed fix.

``SEND_INTERVAL`` is 0.1 s instead of the article's 1 s, so that experiments take seconds.
"""

import asyncio

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

SEND_INTERVAL = 0.1

app = FastAPI()


@app.websocket("/ws/metrics")
async def get_metrics(websocket: WebSocket):
    await websocket.accept()
    while True:
        metrics = {"cpu": 22.4, "memory": 65.1}
        await websocket.send_json(metrics)
        await asyncio.sleep(SEND_INTERVAL)


@app.websocket("/ws/metrics-fixed")
async def get_metrics_fixed(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            metrics = {"cpu": 22.4, "memory": 65.1}
            await websocket.send_json(metrics)
            await asyncio.sleep(SEND_INTERVAL)
    except WebSocketDisconnect:
        print("Client disconnected from metrics channel.")


@app.get("/health")
async def health():
    return {"ok": True}
