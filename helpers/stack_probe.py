"""The seed's broken endpoint on whatever stack this Python has installed, reported as JSON.

Run as a script by ``helpers.timemachine`` inside throwaway virtual environments holding
historical versions of fastapi, starlette, uvicorn and websockets. It imports nothing from
the lab and uses a raw-socket WebSocket client, so the client never changes between stacks.

    python stack_probe.py BACKEND WAY[,WAY...] OBSERVE_SECONDS

Each way runs on a fresh server, one after the other, and prints one JSON line: one process per backend
saves the start-up cost of importing an old stack once per way.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import struct
import sys
import threading
import time
from importlib import metadata
from typing import Any

from fastapi import FastAPI, WebSocket

SEND_INTERVAL = 0.05
SHUTDOWN_WAIT = 1.0  # seconds a graceful shutdown may take before the report says it hung
state: dict[str, Any] = {"running": 0, "sends_after_leave": 0, "raised": None, "left_at": None, "ended_at": None}

app = FastAPI()


@app.websocket("/ws/metrics")
async def get_metrics(websocket: WebSocket) -> None:
    state["running"] += 1
    try:
        await websocket.accept()
        while True:
            metrics = {"cpu": 22.4, "memory": 65.1}
            await websocket.send_json(metrics)
            if state["left_at"] is not None:
                state["sends_after_leave"] += 1
            await asyncio.sleep(SEND_INTERVAL)
    except BaseException as error:  # recorded, then raised on unchanged
        state["raised"] = f"{type(error).__module__}.{type(error).__qualname__}"
        raise
    finally:
        state["running"] -= 1
        state["ended_at"] = time.monotonic()


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            error = record.exc_info[1] if record.exc_info else None
            detail = f" [{type(error).__module__}.{type(error).__qualname__}: {error}]" if error else ""
            self.lines.append(record.getMessage().strip() + detail)


def raw_client(port: int, way: str, ready: threading.Event, done: threading.Event) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    assert b" 101 " in response.split(b"\r\n")[0], response
    time.sleep(0.3)
    state["left_at"] = time.monotonic()
    ready.set()
    if way == "clean":
        mask = os.urandom(4)
        payload = struct.pack("!H", 1001)
        sock.sendall(bytes([0x88, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        time.sleep(0.2)
        sock.close()
    elif way == "fin":
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    elif way == "rst":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    done.wait()
    if way == "silent":
        sock.close()


async def main(backend: str, way: str, observe: float) -> dict[str, object]:
    import uvicorn

    state.update(running=0, sends_after_leave=0, raised=None, left_at=None, ended_at=None)
    errors = Errors()
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).addHandler(errors)
        logging.getLogger(name).propagate = False
    config = uvicorn.Config(app, host="127.0.0.1", port=0, ws=backend, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn's `started` is a plain flag, with no event to await
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    ready, done = threading.Event(), threading.Event()
    threading.Thread(target=raw_client, args=(port, way, ready, done), daemon=True).start()
    while not ready.is_set():  # noqa: ASYNC110 - a threading.Event, set by the client's thread
        await asyncio.sleep(0.01)
    await asyncio.sleep(observe)
    ended_after = state["ended_at"] - state["left_at"] if state["running"] == 0 and state["ended_at"] else None
    report = {
        "versions": {n: metadata.version(n) for n in ("fastapi", "starlette", "uvicorn", "websockets", "wsproto")},
        "backend": backend,
        "way": way,
        "observed_seconds": observe,
        "handler_ended_after": ended_after,
        "still_running": state["running"],
        "sends_after_leave": state["sends_after_leave"],
        "raised_in_handler": state["raised"],
        "logged_errors": list(errors.lines),
    }
    done.set()
    server.should_exit = True
    try:
        await asyncio.wait_for(serving, SHUTDOWN_WAIT)
    except TimeoutError:
        report["shutdown_hung"] = True
    else:
        report["shutdown_hung"] = False
    return report


if __name__ == "__main__":
    for one_way in sys.argv[2].split(","):
        loop = asyncio.new_event_loop()   # a hung server's tasks stay on their own loop, never run again
        print(json.dumps(loop.run_until_complete(main(sys.argv[1], one_way, float(sys.argv[3])))), flush=True)
    os._exit(0)  # a hung server must not keep this process alive
