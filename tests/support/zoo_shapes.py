"""Endpoints shaped like real projects' (docs, issues, public repositories), one route shape each.

Each app is small and says where its shape comes from. The leak checker's tests run it on them.
"""

import asyncio
import itertools
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Query, WebSocket, WebSocketDisconnect, WebSocketException, status
from starlette.applications import Starlette
from starlette.endpoints import WebSocketEndpoint
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount, WebSocketRoute

# --- Starlette's class endpoints (Starlette docs, "Endpoints": WebSocketEndpoint).


class Echo(WebSocketEndpoint):
    encoding = "text"

    async def on_receive(self, websocket, data):
        await websocket.send_text(f"Message text was: {data}")


class Ticker(WebSocketEndpoint):
    """Starts a push task in on_connect and forgets it in on_disconnect (a common issue report)."""

    tasks: set = set()

    async def on_connect(self, websocket):
        await websocket.accept()

        async def push():
            while True:
                await asyncio.sleep(0.05)
                try:
                    await websocket.send_text("tick")
                except Exception:
                    pass

        self.tasks.add(asyncio.create_task(push()))


starlette_app = Starlette(routes=[
    WebSocketRoute("/echo", Echo),
    WebSocketRoute("/ticker", Ticker),
    Mount("/v1", routes=[WebSocketRoute("/echo", Echo)]),
])

# --- FastAPI: routers with prefixes, mounted sub-apps, middleware, path parameters, Depends.

app = FastAPI()
app.add_middleware(GZipMiddleware)
chat = APIRouter(prefix="/chat", tags=["chat"])
rooms: dict[str, set[WebSocket]] = {}


@chat.websocket("/{room}")
async def chat_room(websocket: WebSocket, room: str):
    """A room registry cleaned up only on WebSocketDisconnect (iter_text() ends quietly on close)."""
    await websocket.accept()
    rooms.setdefault(room, set()).add(websocket)
    try:
        async for text in websocket.iter_text():
            for peer in rooms[room]:
                await peer.send_text(text)
    except WebSocketDisconnect:
        rooms[room].discard(websocket)


@chat.websocket("/safe/{room}")
async def safe_room(websocket: WebSocket, room: str):
    await websocket.accept()
    rooms.setdefault(room, set()).add(websocket)
    try:
        async for text in websocket.iter_text():
            await websocket.send_text(text)
    finally:
        rooms[room].discard(websocket)


app.include_router(chat, prefix="/api")


async def get_token(websocket: WebSocket, token: str | None = Query(default=None)):
    """FastAPI docs, "WebSockets", "Using Depends and others"."""
    if token is None:
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION)
    return token


@app.websocket("/items/{item_id}/ws")
async def item_updates(websocket: WebSocket, item_id: str, token: str = Depends(get_token)):
    await websocket.accept()
    while True:
        data = await websocket.receive_text()
        await websocket.send_text(f"Session token value is: {token}, item {item_id}: {data}")


def require_auth(websocket: WebSocket) -> str:
    if websocket.headers.get("authorization") != "Bearer lab":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION)
    return "lab"


@app.websocket("/private")
async def private(websocket: WebSocket, user: str = Depends(require_auth)):
    await websocket.accept(subprotocol=websocket.scope.get("subprotocols", [None])[0]
                           if websocket.scope.get("subprotocols") else None)
    async for text in websocket.iter_text():
        await websocket.send_text(f"{user}: {text}")


subscriptions: dict[int, asyncio.Queue] = {}


@app.websocket("/subscribe")
async def subscribe(websocket: WebSocket):
    """Waits for a subscribe message, then forwards a queue and never receives again."""
    await websocket.accept()
    if await websocket.receive_text() != "subscribe":
        await websocket.close()
        return
    queue: asyncio.Queue = asyncio.Queue()
    subscriptions[id(websocket)] = queue
    while True:
        await websocket.send_json(await queue.get())


feeds_app = FastAPI()
feed_queues: dict[int, asyncio.Queue] = {}
visitor_numbers = itertools.count()


@feeds_app.websocket("/prices")
async def sub_prices(websocket: WebSocket):
    """A mounted sub-app's endpoint that leaves a queue per visitor behind (no finally)."""
    await websocket.accept()
    key = next(visitor_numbers)   # not id(websocket): an entry left behind would be overwritten once ids are reused
    feed_queues[key] = asyncio.Queue()
    try:
        async for _ in websocket.iter_text():
            pass
    except WebSocketDisconnect:
        del feed_queues[key]


app.mount("/feeds", feeds_app)

# --- A whole app behind a pure ASGI middleware (as in `app = CORSMiddleware(app, ...)`).

inner = FastAPI()


@inner.websocket("/ws")
async def wrapped_echo(websocket: WebSocket):
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


wrapped = CORSMiddleware(inner, allow_origins=["*"])

# --- Plain ASGI apps (no framework).


async def plain_echo(scope, receive, send):
    if scope["type"] != "websocket":
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text")})
        elif message["type"] == "websocket.disconnect":
            return


async def plain_waiter(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    await asyncio.get_running_loop().create_future()  # waits for a result nobody will set


# --- Lifespan: a broker made at startup; a startup that fails.

@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.broker = set()
    yield
    del app.state.broker


broker_app = FastAPI(lifespan=lifespan)


@broker_app.websocket("/ws")
async def broker_feed(websocket: WebSocket):
    await websocket.accept()
    queue: asyncio.Queue = asyncio.Queue()
    websocket.app.state.broker.add(queue)
    try:
        async for _ in websocket.iter_text():
            pass
    finally:
        websocket.app.state.broker.discard(queue)


@asynccontextmanager
async def failing_lifespan(app: FastAPI):
    raise RuntimeError("cannot reach redis://127.0.0.1:1")
    yield  # type: ignore[unreachable]  # the yield makes it an async generator, as a lifespan must be


failing_app = FastAPI(lifespan=failing_lifespan)


@failing_app.websocket("/ws")
async def never_served(websocket: WebSocket):
    await websocket.accept()

# --- Time: slow is not stuck; a frozen loop.

timing = FastAPI()


@timing.websocket("/sleeps-then-ends")
async def sleeps_then_ends(websocket: WebSocket):
    await websocket.accept()
    await asyncio.sleep(5)


@timing.websocket("/push-3s")
async def push_every_3s(websocket: WebSocket):
    await websocket.accept()
    while True:
        await asyncio.sleep(3)
        await websocket.send_text("still here?")


@timing.websocket("/spin")
async def spin(websocket: WebSocket):
    await websocket.accept()
    while True:
        try:
            await websocket.receive_text()
        except:  # noqa: E722 - the bug under test: a disconnected receive raises at once, forever
            pass


@timing.websocket("/reject")
async def reject(websocket: WebSocket):
    await websocket.close(code=status.WS_1008_POLICY_VIOLATION)


@timing.websocket("/accept-then-return")
async def accept_then_return(websocket: WebSocket):
    await websocket.accept()


cache: dict[str, str] = {}
visitors: dict[int, float] = {}


@timing.websocket("/cache-once")
async def cache_once(websocket: WebSocket):
    """A one-time cache: filled by the first visitor, not per visitor."""
    await websocket.accept()
    cache.setdefault("greeting", "hello")
    async for _ in websocket.iter_text():
        pass


@timing.websocket("/remember-visitors")
async def remember_visitors(websocket: WebSocket):
    """An entry per visitor, never removed (keyed by a counter: an id() is reused once its object is freed)."""
    await websocket.accept()
    visitors[next(visitor_numbers)] = asyncio.get_running_loop().time()
    async for _ in websocket.iter_text():
        pass


@timing.websocket("/poller-notices")
async def poller_notices(websocket: WebSocket):
    """A poller that checks its client every second and gives up after its second failed send: slow, not stuck."""
    await websocket.accept()
    misses = 0
    while misses < 2:
        await asyncio.sleep(1.0)
        try:
            await websocket.send_text("still there?")
        except (WebSocketDisconnect, RuntimeError):  # the client left: sends fail now
            misses += 1


@timing.websocket("/poller-forever")
async def poller_forever(websocket: WebSocket):
    """A poller that never looks at its client: wakes every second for nobody, forever."""
    await websocket.accept()
    ticks = 0
    while True:
        await asyncio.sleep(1.0)
        ticks += 1
