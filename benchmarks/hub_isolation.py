"""Can one learner reach another learner's in-kernel dashboard on a running JupyterHub? Measure it.

    OWNER_TOKEN=... OTHER_TOKEN=... python -m benchmarks.hub_isolation --hub http://127.0.0.1:18000 [--browser]

The tokens are the two users' API tokens (or ``--owner-token``/``--other-token``); the users are learner1 (the
owner) and learner2 (the other) unless ``--owner``/``--other`` say otherwise. It starts both users' servers if they
are not running (and stops the ones it started), starts a kernel on the owner's server and runs there notebook 08's
cell that serves the dashboard app and the cell that prints its links (read from notebooks/08_browser.ipynb), then
the notebook's own check of a WebSocket without the key (straight to 127.0.0.1). In that kernel it counts every
WebSocket connection that reaches one of the app's endpoints (the key is checked before, by a middleware).

Then it tries the dashboard as each user, through each user's own ``/user/<name>/proxy/<port>/`` and the other's,
with and without the owner's key, and prints a table: the page's HTTP status, what happened to the WebSocket (its
close code and reason, or the messages it received), and how many endpoint handlers that started on the owner's
server. ``--browser`` also opens the page as the other user in headless Chromium and prints what the page shows.
The kernel is shut down at the end. It asserts nothing and times nothing.

docs/jupyterhub_config_one_host.py is the hub it was run on; docs/instructor_guide.md has the results. A hub that
gives each user a network namespace (one container or pod per user) was not run: there, the other user's proxy
should find nothing listening at the owner's port, and the table would show an error status instead of 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from helpers.notebook_runner import code_cells, notebook_path

WS_PATH = "ws/metrics"  # the fixed endpoint: its handler ends when its connection closes
MESSAGES = 3  # a WebSocket that works must deliver this many metrics messages

# Run in the owner's kernel after notebook 08's cells: count the connections that reach each endpoint's route
# (the key middleware sits in front of the routes, so a refused connection never gets here).
INSTRUMENT = """
import collections as _collections, getpass as _getpass, json as _json, os as _os
from fastapi.routing import APIWebSocketRoute as _APIWebSocketRoute
from helpers.dashboard_page import kernel_key as _kernel_key

_hub_started = _collections.Counter()

def _hub_counted(inner, name):
    async def counted(scope, receive, send):
        _hub_started[name] += 1
        await inner(scope, receive, send)
    return counted

for _route in app.router.routes:
    if isinstance(_route, _APIWebSocketRoute):
        _route.app = _hub_counted(_route.app, _route.name)

_HUB_WATCH = {"get_metrics": get_metrics, "metrics": metrics, "metrics_leaky": metrics_leaky}

def _hub_versions():
    from importlib.metadata import version
    return {name: version(name) for name in
            ("jupyterhub", "jupyterlab", "jupyter-server", "jupyter-server-proxy", "uvicorn", "websockets")}

print("HUB_ISOLATION " + _json.dumps({
    "port": server.port, "key": _kernel_key(), "user": _getpass.getuser(), "uid": _os.getuid(),
    "listening": server.listening_addresses(), "links": {name: link.url for name, link in links.items()},
    "versions": _hub_versions(),
}))
"""
STATE = """print("HUB_ISOLATION " + _json.dumps({"started": sum(_hub_started.values()),
      "alive": sum(server.count_alive(_HUB_WATCH).values()), "connections": server.connections()}))"""
STOP = "from helpers.servers import stop_current\nprint(stop_current())"


def notebook_cells() -> str:
    """Notebook 08's cell that serves the app and the one that makes its links, as the notebook has them."""
    cells = code_cells(notebook_path("08"))
    serve = next(source for source in cells if "server = serve(app)" in source)
    links = next(source for source in cells if "dashboard_link(server, path)" in source)
    return serve + "\n\n" + links


class Hub:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def request(self, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, str, Message]:
        """One HTTP request, redirects not followed: (status, body text, headers)."""
        headers = {"Authorization": f"token {token}"} if token else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, response.read().decode(errors="replace"), response.headers
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace"), error.headers

    def json(self, method: str, path: str, token: str, body: Any = None) -> Any:
        status, text, _ = self.request(method, path, token, body)
        if status >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {text[:300]}")
        return json.loads(text) if text else None

    def ensure_server(self, user: str, token: str, timeout: float = 180) -> bool:
        """Start ``user``'s server unless it runs; True if this call started it."""
        model = self.json("GET", f"/hub/api/users/{user}", token)
        if model.get("servers", {}).get("", {}).get("ready"):
            return False
        status, text, _ = self.request("POST", f"/hub/api/users/{user}/server", token)
        if status not in (201, 202, 400):  # 400: already starting
            raise RuntimeError(f"starting {user}'s server: HTTP {status}: {text[:300]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.json("GET", f"/hub/api/users/{user}", token).get("servers", {}).get("", {}).get("ready"):
                return True
            time.sleep(1)
        raise TimeoutError(f"{user}'s server was not ready after {timeout:.0f} s")

    def ws_url(self, path: str) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path}{path}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Kernel:
    """A kernel on a user's server, driven over the Jupyter server's kernel WebSocket (JSON messages)."""

    def __init__(self, hub: Hub, user: str, token: str) -> None:
        self.hub, self.user, self.token = hub, user, token
        self.id = ""
        self.session = uuid.uuid4().hex
        self.ws: ClientConnection | None = None

    async def start(self) -> None:
        self.id = self.hub.json("POST", f"/user/{self.user}/api/kernels", self.token, {"name": "python3"})["id"]
        self.ws = await connect(self.hub.ws_url(f"/user/{self.user}/api/kernels/{self.id}/channels"),
                                additional_headers={"Authorization": f"token {self.token}"},
                                max_size=None, open_timeout=60)

    async def execute(self, code: str, timeout: float = 180) -> str:
        """Run ``code``; return what it printed. An error in the cell raises, with its traceback's last lines."""
        assert self.ws is not None
        msg_id = uuid.uuid4().hex
        await self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": self.session,
                       "username": "hub_isolation", "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        printed: list[str] = []
        async with asyncio.timeout(timeout):
            while True:
                message = json.loads(await self.ws.recv())
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream":
                    printed.append(content["text"])
                elif kind == "error":
                    raise RuntimeError(
                        f"{content['ename']}: {content['evalue']}\n" + "\n".join(content["traceback"][-3:])
                    )
                elif kind == "status" and content["execution_state"] == "idle":
                    return "".join(printed)

    async def report(self, code: str) -> dict[str, Any]:
        printed = await self.execute(code)
        line = next(line for line in printed.splitlines() if line.startswith("HUB_ISOLATION "))
        return dict(json.loads(line.removeprefix("HUB_ISOLATION ")))

    async def shutdown(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.id:
            self.hub.request("DELETE", f"/user/{self.user}/api/kernels/{self.id}", self.token)


@dataclass
class Attempt:
    who: str
    proxy_of: str
    key: bool
    page: str  # HTTP status of GET .../dashboard (and where a redirect goes)
    websocket: str  # what happened to the WebSocket
    started: int  # endpoint handlers started on the owner's server by this attempt
    alive_while_open: int | None  # handlers alive on the owner's server while the WebSocket was open


async def try_websocket(hub: Hub, path: str, token: str | None, kernel: Kernel) -> tuple[str, int | None]:
    """Open the WebSocket, read up to MESSAGES messages; describe what happened, and count the handlers alive on
    the owner's server while it was open (None if it never was)."""
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        async with connect(hub.ws_url(path), additional_headers=headers, open_timeout=30) as ws:
            received = 0
            try:
                async with asyncio.timeout(15):
                    while received < MESSAGES:
                        await ws.recv()
                        received += 1
            except ConnectionClosed as closed:
                frame = closed.rcvd
                said = f"code {frame.code}, reason {frame.reason!r}" if frame else "no close frame"
                return f"accepted, then closed after {received} messages: {said}", None
            except TimeoutError:
                return f"open, {received} messages in 15 s", None
            alive = (await kernel.report(STATE))["alive"]
            return f"open: {received} metrics messages received", alive
    except InvalidStatus as refused:
        return f"handshake refused: HTTP {refused.response.status_code}", None
    except OSError as error:
        return f"no connection: {error}", None


async def in_chromium(hub: Hub, path: str, token: str) -> str:
    """What the dashboard page itself shows in headless Chromium (Debian's, as notebook 08's robot uses), the
    user's token sent as a header on every request, the page's WebSocket handshake included."""
    from playwright.async_api import async_playwright

    from helpers.browser import CHROMIUM_ARGS, chromium_path

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(extra_http_headers={"Authorization": f"token {token}"})
            page = await context.new_page()
            response = await page.goto(hub.url + path, timeout=60_000)
            await page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('connection closed')"
                f" || Number(document.getElementById('count').textContent) >= {MESSAGES}", timeout=20_000)
            status = await page.inner_text("#status")
            updates = await page.inner_text("#count")
            return f"HTTP {response.status if response else '?'}; the page says {status!r}, updates {updates}"
        finally:
            await browser.close()


async def measure(args: argparse.Namespace) -> int:
    hub = Hub(args.hub)
    tokens = {args.owner: args.owner_token, args.other: args.other_token}
    version = hub.json("GET", "/hub/api/", args.owner_token)["version"]
    print(f"hub: {hub.url} (JupyterHub {version})")
    started_servers = [user for user, token in tokens.items() if hub.ensure_server(user, token)]
    kernel = Kernel(hub, args.owner, args.owner_token)
    try:
        await kernel.start()
        info = await kernel.report(notebook_cells() + "\n\n" + INSTRUMENT)
        port, key = info["port"], info["key"]
        print(f"{args.owner}'s kernel runs as Unix user {info['user']} (uid {info['uid']}); "
              f"notebook 08's app listens on {info['listening']}")
        print(f"link notebook 08 printed: {info['links']['metrics']}")
        print("single-user server: " + ", ".join(f"{name} {v}" for name, v in info["versions"].items()))
        direct = next(source for source in code_cells(notebook_path("08"))
                      if "without the key: the page answered" in source)
        print(f"notebook 08's own check, run in {args.owner}'s kernel (straight to 127.0.0.1, no proxy): "
              + (await kernel.execute(direct)).strip())
        cases = [  # (who, whose proxy, with the owner's key, with a token)
            (args.owner, args.owner, True, True),
            (args.other, args.other, False, True),
            (args.other, args.other, True, True),
            (args.other, args.owner, True, True),
            ("(not logged in)", args.other, True, False),
        ]
        attempts = []
        for who, proxy_of, with_key, with_token in cases:
            token = tokens.get(who) if with_token else None
            query = f"?key={key}" if with_key else ""
            base = f"/user/{proxy_of}/proxy/{port}/"
            page_path = f"{base}dashboard?ws={WS_PATH}" + (f"&key={key}" if with_key else "")
            status, _, headers = hub.request("GET", page_path, token)
            page = f"{status}" + (f" to {headers.get('Location', '').split('?')[0]}" if 300 <= status < 400 else "")
            before = (await kernel.report(STATE))["started"]
            websocket, alive = await try_websocket(hub, f"{base}{WS_PATH}{query}", token, kernel)
            await asyncio.sleep(0.5)  # the handler's own end, after its connection closed
            after = (await kernel.report(STATE))["started"]
            attempts.append(Attempt(who, proxy_of, with_key, page, websocket, after - before, alive))
        print()
        print(f"| who | path | {args.owner}'s key | GET dashboard | WebSocket {WS_PATH} | handlers started on "
              f"{args.owner}'s server | alive while open |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for a in attempts:
            shown = "-" if a.alive_while_open is None else str(a.alive_while_open)
            print(f"| {a.who} | /user/{a.proxy_of}/proxy/{port}/ | {'yes' if a.key else 'no'} | {a.page} | "
                  f"{a.websocket} | {a.started} | {shown} |")
        if args.browser:
            print(f"\nIn Chromium, as {args.other}, through /user/{args.other}/proxy/{port}/:")
            for with_key in (False, True):
                query = f"?ws={WS_PATH}" + (f"&key={key}" if with_key else "")
                before = (await kernel.report(STATE))["started"]
                seen = await in_chromium(hub, f"/user/{args.other}/proxy/{port}/dashboard{query}", args.other_token)
                await asyncio.sleep(0.5)
                started = (await kernel.report(STATE))["started"] - before
                print(f"- {'with' if with_key else 'without'} {args.owner}'s key: {seen}; "
                      f"handlers started on {args.owner}'s server: {started}")
        final = await kernel.report(STATE)
        print(f"\nafter all attempts: {final['alive']} handlers alive, {final['connections']} connections open on "
              f"{args.owner}'s dashboard server")
        print((await kernel.execute(STOP)).strip())
    finally:
        await kernel.shutdown()
        for user in started_servers:
            hub.request("DELETE", f"/hub/api/users/{user}/server", tokens[user])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hub", required=True, help="the hub's public URL, e.g. http://127.0.0.1:18000")
    parser.add_argument("--owner", default="learner1", help="the user whose kernel serves the dashboard")
    parser.add_argument("--other", default="learner2", help="the user who tries to reach it")
    parser.add_argument("--owner-token", default=os.environ.get("OWNER_TOKEN"))
    parser.add_argument("--other-token", default=os.environ.get("OTHER_TOKEN"))
    parser.add_argument("--browser", action="store_true",
                        help="also open the page as the other user in headless Chromium "
                             "(needs Playwright and Chromium)")
    args = parser.parse_args(argv)
    if not (args.owner_token and args.other_token):
        parser.error("both users' API tokens are needed: OWNER_TOKEN and OTHER_TOKEN, or --owner-token/--other-token")
    return asyncio.run(measure(args))


if __name__ == "__main__":
    sys.exit(main())
