"""Debian's nginx in front of the lab's servers: unprivileged, in the foreground, on loopback.

Every path nginx touches is in a temporary directory (``-p DIR``, ``-e DIR/error.log``, the pid
file, the logs, the temp paths), so it runs as any user, Binder's included. The proxy block is
nginx's documented WebSocket one (https://nginx.org/en/docs/http/websocket.html): HTTP/1.1 to
the backends and the Upgrade/Connection headers passed on.

nginx cannot listen on port 0: the lab picks a free port, writes it into the configuration,
and starts again on another port if nginx reports that the port was taken in between.
"""

from __future__ import annotations

import grp
import http.client
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Literal, get_args

from helpers.errors import LabError
from helpers.stack.processes import HOST, Child, OwnedProcess, free_port, temp_dir, wait_for

Route = Literal["direct", "nginx"]
ROUTES: tuple[Route, ...] = get_args(Route)
"""How the production lessons' clients reach a worker: directly on its port, or through nginx."""
BIND_ATTEMPTS = 5
START_TIMEOUT = 10.0
READY_PATH = "/__lab_nginx_ready"
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
INSTALL_HINT = ("nginx is not installed here; install Debian's with `sudo apt-get install nginx` "
                "(Binder: list `nginx` in binder/apt.txt).")
"""What a notebook prints instead of measuring when nginx is missing: one sentence naming the fix."""


def nginx_binary() -> Path:
    found = shutil.which("nginx", path=SEARCH_PATH)
    if found is None:
        raise LabError(INSTALL_HINT)
    return Path(found)


def available() -> bool:
    """Whether an nginx binary is on PATH or in the sbin folders (Debian's is in /usr/sbin)."""
    return shutil.which("nginx", path=SEARCH_PATH) is not None


@cache
def nginx_version(binary: Path) -> tuple[int, ...]:
    printed = subprocess.run([str(binary), "-v"], capture_output=True, text=True, timeout=10).stderr
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", printed)
    if match is None:
        raise LabError(f"Cannot read nginx's version from {printed.strip()!r}.")
    return tuple(int(part) for part in match.groups())


def _seconds(name: str, value: float) -> str:
    if value <= 0:
        raise LabError(f"{name} must be a positive number of seconds, not {value!r}.")
    return f"{int(value * 1000)}ms"


def render_config(
    directory: Path,
    port: int,
    backends: Sequence[int],
    *,
    token: str,
    proxy_read_timeout: float,
    send_timeout: float,
    proxy_send_timeout: float,
    as_root: bool | None = None,
) -> str:
    """The whole nginx.conf: one server on loopback proxying to an ``upstream`` of the backends.

    ``as_root``: whether nginx will be started as root (default: whether this process runs as root).
    """
    user = ""
    if os.geteuid() == 0 if as_root is None else as_root:  # as root, nginx would switch its workers to `nobody`
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    servers = "\n".join(f"        server {HOST}:{backend};" for backend in backends)
    temp = "\n".join(f"    {kind}_temp_path {directory / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""# Written by helpers.stack.nginx for one lesson; every path is in {directory}.
daemon off;
master_process on;
worker_processes 1;
{user}
pid {directory / 'nginx.pid'};
error_log {directory / 'error.log'} info;

events {{
    worker_connections 1024;
}}

http {{
    access_log {directory / 'access.log'};
{temp}

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    upstream lab_backends {{
{servers}
    }}

    server {{
        listen {HOST}:{port};
        send_timeout {_seconds('send_timeout', send_timeout)};

        location = {READY_PATH} {{
            return 200 "{token}";
        }}

        location / {{
            proxy_pass http://lab_backends;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            # Who the client is, for the workers' check that it is a process of this user (ws_leakcheck.owner_only).
            proxy_set_header X-Lab-Client "$remote_addr:$remote_port $server_addr:$server_port";
            proxy_read_timeout {_seconds('proxy_read_timeout', proxy_read_timeout)};
            proxy_send_timeout {_seconds('proxy_send_timeout', proxy_send_timeout)};
        }}
    }}
}}
"""


class Nginx(OwnedProcess):
    """A running nginx owned by the lab, proxying ``/`` to ``backends`` (loopback ports).

    ``proxy_read_timeout``: how long nginx waits for the backend to send anything before it
    closes the connection (its default: 60 s). ``send_timeout``: how long a write to the
    client may make no progress (default 60 s). Stop it with ``stop()`` or a ``with`` block.
    """

    def __init__(
        self,
        backends: Sequence[int],
        *,
        proxy_read_timeout: float = 60.0,
        send_timeout: float = 60.0,
        proxy_send_timeout: float = 60.0,
    ) -> None:
        if not backends:
            raise LabError("nginx needs at least one backend port to proxy to.")
        for backend in backends:
            if not isinstance(backend, int) or not 0 < backend < 65536:
                raise LabError(f"Backend {backend!r} is not a TCP port number (1 to 65535).")
        binary = nginx_binary()
        self.backends = list(backends)
        self.dir = temp_dir("nginx")
        self.token = secrets.token_hex(8)
        self.settings = {"proxy_read_timeout": proxy_read_timeout, "send_timeout": send_timeout,
                         "proxy_send_timeout": proxy_send_timeout}
        error_flag = ["-e", str(self.dir / "error.log")] if nginx_version(binary) >= (1, 19, 5) else []
        for _ in range(BIND_ATTEMPTS):
            self.port = free_port()
            (self.dir / "error.log").unlink(missing_ok=True)  # a new attempt, a new log
            config = self.dir / "nginx.conf"
            config.write_text(render_config(self.dir, self.port, self.backends, token=self.token,
                                            proxy_read_timeout=self.settings["proxy_read_timeout"],
                                            send_timeout=self.settings["send_timeout"],
                                            proxy_send_timeout=self.settings["proxy_send_timeout"]))
            self.child = Child(
                "nginx", [str(binary), "-p", str(self.dir), "-c", str(config), *error_flag],
                log=self.dir / "output.log", stop_signal=signal.SIGTERM, death_signal=signal.SIGTERM, cwd=self.dir,
            )
            wait_for(lambda: self._port_taken() or self._answers(), self.child, START_TIMEOUT, "nginx")
            if self._port_taken():
                self.child.stop(timeout=0.1)  # it would only retry the taken port for 2.5 s
                continue
            if self.child.running():
                return
            self.child.stop(timeout=1.0)
            raise LabError(f"nginx exited during start-up: {(self.errors() or ['no message'])[-1]}.")
        raise LabError(f"nginx could not bind a free loopback port in {BIND_ATTEMPTS} attempts.")

    def _port_taken(self) -> bool:
        """nginx logs the failed bind at once, then retries for 2.5 s before it exits."""
        return any("Address already in use" in line for line in self.errors())

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=1.0)
        try:
            connection.request("GET", READY_PATH)
            return connection.getresponse().read().decode() == self.token
        except OSError:
            return False
        finally:
            connection.close()

    def errors(self) -> list[str]:
        """nginx's error log, one line each (it also logs at notice and info level)."""
        path = self.dir / "error.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        if not path.startswith("/"):
            raise LabError(f"A URL path starts with '/', not {path!r}.")
        return f"{scheme}://{HOST}:{self.port}{path}"

    def processes(self) -> list[int]:
        """The master's pid and its workers' pids."""
        import psutil

        try:
            master = psutil.Process(self.child.pid)
            return [master.pid, *(p.pid for p in master.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def __repr__(self) -> str:
        return f"<Nginx {HOST}:{self.port} -> {self.backends} {'running' if self.running() else 'stopped'}>"
