"""A small live dashboard page, served by the in-kernel app, that a real browser tab can open and close.

The page is self-contained (no CDN, works offline). It builds its WebSocket address from its own
location, so the same page works at ``http://127.0.0.1:PORT/dashboard``, behind jupyter-server-proxy
at ``{base_url}proxy/PORT/dashboard``, and over https (``wss:``) on Binder or a JupyterHub.

Only a browser given this kernel's link (which carries its key) gets the page and the app's WebSockets.
On a JupyterHub that runs every user on one host, loopback ports are shared, so another user's proxy can
reach this kernel's port (measured: docs/instructor_guide.md, "One host: measured"). Two locks answer that.
Every lab server refuses connections from another Unix user's processes (``ws_leakcheck.owner_only``, Linux).
And ``add_dashboard`` puts the app behind a per-kernel key, for systems where the owner cannot be read:
every request needs ``key=`` in its query string (the page passes on the one in its own link, which
``dashboard_link`` writes). A page asked for without it gets HTTP 403. A WebSocket without it is accepted,
told why in one message (``{"refused": REFUSED}``), and closed with code 1008 (policy violation) and the
same reason: behind jupyter-server-proxy (4.6.0) a close's code and reason do not reach the browser, so the
message is what a page can show.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse

from helpers.routes import ASGIApp
from helpers.servers import HOST, LabServer

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Server metrics</title>
<style>
  body { font: 18px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
  h1 { font-size: 1.4em; margin: 0 0 .6em; }
  .tiles { display: flex; gap: 1em; }
  .tile { border: 2px solid #0072B2; border-radius: 8px; padding: .6em 1em; min-width: 8em; }
  .tile b { display: block; font-size: 2em; color: #0072B2; }
  #status.closed { color: #D55E00; }
</style>
</head>
<body>
<h1>Server metrics</h1>
<p id="status">connecting...</p>
<div class="tiles">
  <div class="tile">CPU<b id="cpu">-</b></div>
  <div class="tile">memory<b id="memory">-</b></div>
  <div class="tile">updates<b id="count">0</b></div>
</div>
<p><small id="address"></small></p>
<script>
  const params = new URLSearchParams(location.search);
  const folder = location.pathname.replace(/[^/]*$/, "");   // keeps a proxy prefix such as /user/me/proxy/8000/
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const address = scheme + "//" + location.host + folder + (params.get("ws") || "ws/metrics");
  document.getElementById("address").textContent = address;
  let count = 0, refused = "";
  const socket = new WebSocket(address + "?key=" + encodeURIComponent(params.get("key") || ""));
  socket.onopen = () => { document.getElementById("status").textContent = "live"; };
  socket.onmessage = (event) => {
    const metrics = JSON.parse(event.data);
    if (metrics.refused) { refused = metrics.refused; return; }
    document.getElementById("cpu").textContent = metrics.cpu.toFixed(1) + " %";
    document.getElementById("memory").textContent = metrics.memory.toFixed(1) + " %";
    document.getElementById("count").textContent = String(++count);
  };
  socket.onclose = (event) => {
    const status = document.getElementById("status");
    const reason = event.reason || refused;   // a proxy may drop the close's reason, not the message
    status.textContent = "connection closed (" + event.code + (reason ? ": " + reason : "") + ")";
    status.className = "closed";
  };
</script>
</body>
</html>
"""


REFUSED = "This dashboard belongs to another kernel: open the link that kernel's notebook printed."
"""The close reason (at most 123 bytes, the WebSocket limit) for a WebSocket without the key."""
REFUSED_CODE = 1008


@functools.cache
def kernel_key() -> str:
    """A secret made once per kernel (process); only links printed in this kernel carry it."""
    return secrets.token_urlsafe(16)


def _has_key(scope: dict[str, Any]) -> bool:
    given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("key", [""])[0]
    return secrets.compare_digest(given.encode(), kernel_key().encode())


class KernelKeyRequired:
    """ASGI middleware: HTTP requests and WebSocket connections without this kernel's key are refused. A page
    gets HTTP 403 with the reason; a WebSocket gets the reason as a message and as the close's reason."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or _has_key(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http":
            body = REFUSED.encode()
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await receive()  # websocket.connect
        # Accept, then close: a close before accepting becomes an HTTP 403, and the browser sees no reason.
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps({"refused": REFUSED})})
        await send({"type": "websocket.close", "code": REFUSED_CODE, "reason": REFUSED})


async def dashboard_page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


def add_dashboard(app: Starlette, path: str = "/dashboard") -> None:
    """Serve the dashboard page at ``path`` (GET) on a FastAPI or Starlette app, and require this kernel's
    key (``kernel_key()``) on every WebSocket connection the app receives."""
    app.add_route(path, dashboard_page, methods=["GET"])
    app.add_middleware(KernelKeyRequired)


@dataclass(frozen=True)
class DashboardLink:
    """The dashboard's address as this learner's browser reaches it; a notebook shows it as a link."""

    url: str
    """The address to open: through Jupyter's proxy on a hub or Binder, the server's own otherwise."""
    via: str

    def _repr_markdown_(self) -> str:
        return f"[Open the dashboard in a new tab]({self.url}) ({self.via})"


@functools.cache
def _jupyter_base_url() -> str | None:
    """The base URL of the Jupyter server that started this kernel, if it is one (looked up once per kernel:
    importing jupyter_server takes seconds on a busy machine)."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix:
        return prefix if prefix.endswith("/") else prefix + "/"
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    parent = os.getppid()
    for info in list_running_servers():
        if info.get("pid") == parent:
            return str(info.get("base_url", "/"))
    return None


def _proxy_available() -> bool:
    try:
        import jupyter_server_proxy  # noqa: F401
    except ImportError:
        return False
    return True


def dashboard_link(server: LabServer, ws_path: str = "ws/metrics", page: str = "/dashboard", *,
                   direct: bool = False) -> DashboardLink:
    """Where a browser can open the dashboard: through jupyter-server-proxy when this kernel runs
    under a Jupyter server (local JupyterLab, Binder, JupyterHub), otherwise (or with ``direct``)
    on 127.0.0.1, which only a browser on this machine can reach."""
    query = f"?ws={ws_path.lstrip('/')}&key={kernel_key()}"
    base = None if direct else _jupyter_base_url()
    if base is not None and _proxy_available():
        via = ("through JupyterHub's jupyter-server-proxy" if "JUPYTERHUB_SERVICE_PREFIX" in os.environ
               else "through jupyter-server-proxy")
        return DashboardLink(f"{base}proxy/{server.port}{page}{query}", via)
    return DashboardLink(f"http://{HOST}:{server.port}{page}{query}", "directly on this machine")
