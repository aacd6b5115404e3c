"""What this Python's asyncio does when a server stops while a connection's handler still runs. Standard library only.

    python helpers/experiments/wait_closed.py   # prints {"python": "3.12.1", "wait_closed_returned": false, ...}

A server's handler waits for ever, as a leaked WebSocket handler does. One client connects; once its handler
runs, the server is closed, as a server does at Ctrl-C, and ``Server.wait_closed()`` is given ``WAIT``
seconds: does it return, or wait for the connection? Then the handler is cancelled, as a server's graceful
timeout does: does asyncio itself log an error for that cancellation ("Exception in callback ...")?
"""

import asyncio
import json
import platform

WAIT = 1.0


async def main() -> dict[str, bool]:
    handlers: list[asyncio.Task[None]] = []
    logged: list[str] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: logged.append(context["message"]))
    handler_running = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        handler_running.set()
        await asyncio.Event().wait()  # never ends, like a handler waiting on a feed

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    await handler_running.wait()
    server.close()  # stop listening, as a server does at Ctrl-C
    try:
        await asyncio.wait_for(server.wait_closed(), WAIT)
        returned = True
    except TimeoutError:
        returned = False
    handlers[0].cancel()  # what a graceful timeout does to a handler still running
    await asyncio.gather(*handlers, return_exceptions=True)
    for _ in range(3):  # the task's done callbacks run on the next turns of the loop
        await asyncio.sleep(0)
    writer.close()
    return {"wait_closed_returned": returned, "cancel_logged_an_error": bool(logged)}


if __name__ == "__main__":
    print(json.dumps({"python": platform.python_version(), **asyncio.run(main())}))
