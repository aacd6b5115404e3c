"""A small live dashboard page, served by the in-kernel app, that a real browser tab can open and close.

The page is self-contained (no CDN, works offline). It builds its WebSocket address from its own
location, so the same page works at ``http://127.0.0.1:PORT/dashboard``, behind jupyter-server-proxy
at ``{base_url}proxy/PORT/dashboard``, and over https (``wss:``) on Binder or a JupyterHub.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse

from helpers.routes import ASGIApp
from helpers.server import HOST, LabServer

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
  let count = 0;
  const socket = new WebSocket(address);
  socket.onopen = () => { document.getElementById("status").textContent = "live"; };
  socket.onmessage = (event) => {
    const metrics = JSON.parse(event.data);
    document.getElementById("cpu").textContent = metrics.cpu.toFixed(1) + " %";
    document.getElementById("memory").textContent = metrics.memory.toFixed(1) + " %";
    document.getElementById("count").textContent = String(++count);
  };
  socket.onclose = () => {
    const status = document.getElementById("status");
    status.textContent = "connection closed";
    status.className = "closed";
  };
</script>
</body>
</html>
"""


async def dashboard_page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


def add_dashboard(app: ASGIApp, path: str = "/dashboard") -> None:
    """Serve the dashboard page at ``path`` (GET) on a FastAPI or Starlette app."""
    app.add_route(path, dashboard_page, methods=["GET"])


@dataclass(frozen=True)
class DashboardLink:
    url: str
    via: str

    def _repr_markdown_(self) -> str:
        return f"[Open the dashboard in a new tab]({self.url}) ({self.via})"


def _jupyter_base_url() -> str | None:
    """The base URL of the Jupyter server that started this kernel, if it is one."""
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
    query = f"?ws={ws_path.lstrip('/')}"
    base = None if direct else _jupyter_base_url()
    if base is not None and _proxy_available():
        via = "through JupyterHub's jupyter-server-proxy" if "JUPYTERHUB_SERVICE_PREFIX" in os.environ else "through jupyter-server-proxy"
        return DashboardLink(f"{base}proxy/{server.port}{page}{query}", via)
    return DashboardLink(f"http://{HOST}:{server.port}{page}{query}", "directly on this machine")
