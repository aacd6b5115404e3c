"""Notebook 08's app: the dashboard page and its three endpoints (a test keeps them in step)."""

import asyncio

import psutil
from fastapi import FastAPI, WebSocket

from helpers.pattern import run_with_receiver
from helpers.dashboard_page import add_dashboard

SEND_INTERVAL = 0.2

app = FastAPI()
add_dashboard(app)   # GET /dashboard, and this kernel's key required on every connection


@app.websocket("/ws/article")
async def get_metrics(websocket: WebSocket):
    await websocket.accept()
    while True:
        metrics = {"cpu": 22.4, "memory": 65.1}
        await websocket.send_json(metrics)
        await asyncio.sleep(SEND_INTERVAL)


def read_metrics() -> dict:
    return {"cpu": psutil.cpu_percent(), "memory": psutil.virtual_memory().percent}


async def push_metrics(websocket: WebSocket) -> None:
    while True:
        await websocket.send_json(read_metrics())
        await asyncio.sleep(SEND_INTERVAL)


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
        await asyncio.sleep(SEND_INTERVAL)
