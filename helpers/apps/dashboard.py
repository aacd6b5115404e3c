"""Notebook 07's app: the dashboard page and its two endpoints (a test keeps them in step)."""

import asyncio

import psutil
from fastapi import FastAPI, WebSocket

from helpers.apps.fixed import run_with_receiver
from helpers.dashboard import add_dashboard

app = FastAPI()
add_dashboard(app)   # GET /dashboard


def read_metrics() -> dict:
    return {"cpu": psutil.cpu_percent(), "memory": psutil.virtual_memory().percent}


async def push_metrics(websocket: WebSocket) -> None:
    while True:
        await websocket.send_json(read_metrics())
        await asyncio.sleep(0.2)


@app.websocket("/ws/metrics")
async def metrics(websocket: WebSocket):
    await websocket.accept()
    await run_with_receiver(websocket, push_metrics(websocket))


@app.websocket("/ws/metrics-leaky")
async def metrics_leaky(websocket: WebSocket):
    await websocket.accept()
    while True:
        try:
            await websocket.send_json(read_metrics())
        except Exception:
            pass
        await asyncio.sleep(0.2)
