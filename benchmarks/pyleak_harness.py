"""pyleak 0.2.0's most favourable honest harness on one endpoint; run by benchmarks/leakcheck_vs_pyleak.py in a
throwaway environment that holds pyleak (never in the lab's).

    python benchmarks/pyleak_harness.py MODULE:APP PATH [--send TEXT ...] [--app-dir DIR]

As a team would write it around pyleak (reviews/checker-vs-pyleak.md): uvicorn serves the app in this test's own
loop (127.0.0.1, port 0, pings every 0.5 s with 0.5 s to answer, as ws-leakcheck's), real ``websockets`` clients
connect, send the endpoint's script, wait for its reply, and leave, one way after the other (a close frame, a FIN,
a reset), inside ``async with no_task_leaks(action="raise")``; before the block ends the harness polls up to
6.5 s for the tasks created inside it to end. It prints one JSON line: {"leak": bool, "error": str | null}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import socket
import struct
import sys

import uvicorn
from pyleak import TaskLeakError, no_task_leaks
from websockets.asyncio.client import connect

CLIENTS = 3
WAIT = 6.5


async def _leave(connection, way: str) -> None:
    if way == "clean":
        with contextlib.suppress(Exception):
            await connection.close()
        return
    sock = connection.transport.get_extra_info("socket")
    if way == "rst" and sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.transport.abort()
    else:
        connection.transport.close()


async def _session(url: str, send: list[str], way: str) -> None:
    try:
        connection = await connect(url, ping_interval=None, open_timeout=5)
    except Exception:  # noqa: BLE001 - a refused handshake: nothing to leave
        return
    for text in send:
        with contextlib.suppress(Exception):
            await connection.send(text)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.recv(), 0.5)  # the app's reply, if any
    await _leave(connection, way)


async def main(app_spec: str, path: str, send: list[str]) -> dict:
    module, _, attribute = app_spec.partition(":")
    app = getattr(importlib.import_module(module), attribute)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, ws_ping_interval=0.5, ws_ping_timeout=0.5, log_level="critical",
                                           lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.01)
    url = f"ws://127.0.0.1:{port}{path}"
    result = {"leak": False, "error": None}
    try:
        async with no_task_leaks(action="raise"):
            before = asyncio.all_tasks()
            for way in ("clean", "fin", "rst"):
                await asyncio.gather(*(_session(url, send, way) for _ in range(CLIENTS)))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT
            while loop.time() < deadline:
                if all(t.done() for t in asyncio.all_tasks() - before - {asyncio.current_task()}):
                    break
                await asyncio.sleep(0.1)
    except TaskLeakError as error:
        result = {"leak": True, "error": str(error).splitlines()[0][:200]}
    finally:
        server.should_exit = True
        server.force_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 3.0)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("app")
    parser.add_argument("path")
    parser.add_argument("--send", action="append", default=[])
    parser.add_argument("--app-dir")
    args = parser.parse_args()
    if args.app_dir:
        sys.path.insert(0, args.app_dir)
    print(json.dumps(asyncio.run(main(args.app, args.path, args.send))), flush=True)
    sys.stdout.flush()
    import os

    os._exit(0)  # leaked tasks and threads must not keep the process alive
