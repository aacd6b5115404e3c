"""Try every door of a running lab stack, and print what each did, as one JSON object.

Run by tests/classroom/test_two_users.py as a second Unix user (and as the stack's owner, to show the doors are
real), with the system's ``python3 -I``: standard library only, nothing of the lab imported.

    python3 -I doors.py '{"redis_port": 6379, "redis_socket": "...", ...}'
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys

HOST = "127.0.0.1"  # ws_leakcheck.servers.HOST; this file runs as another user and imports nothing of the lab


def _error(exc: BaseException) -> str:
    return type(exc).__name__


def redis(address: tuple[str, int] | str, *words: str) -> str:
    """The first line of Redis's reply to one command, or the error that stopped it."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(address)
            command = f"*{len(words)}\r\n" + "".join(f"${len(w.encode())}\r\n{w}\r\n" for w in words)
            sock.sendall(command.encode())
            return sock.recv(4096).decode(errors="replace").split("\r\n")[0] or "closed"
    except OSError as exc:
        return _error(exc)


def http(port: int, path: str, websocket: bool) -> str:
    """The status code of a GET (a WebSocket handshake when asked), or what stopped it."""
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = (f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n") if websocket else "Connection: close\r\n"
    try:
        with socket.create_connection((HOST, port), timeout=5) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{upgrade}\r\n".encode())
            head = sock.recv(4096).decode(errors="replace")
    except OSError as exc:
        return _error(exc)
    parts = head.split(" ", 2)
    return parts[1] if head.startswith("HTTP/") and len(parts) > 1 else "closed"


def unix_connect(path: str) -> str:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)
        return "connected"
    except OSError as exc:
        return _error(exc)


def read(path: str) -> str:
    try:
        with open(path, "rb") as file:
            file.read(1)
        return "read"
    except OSError as exc:
        return _error(exc)


def listing(path: str) -> str:
    try:
        os.listdir(path)
        return "listed"
    except OSError as exc:
        return _error(exc)


def main(doors: dict[str, str]) -> dict[str, str]:
    """Every door whose address is given (a missing key skips its doors)."""
    tried: dict[str, str] = {}
    path = doors.get("path", "/")
    if "redis_port" in doors:
        redis_tcp = (HOST, int(doors["redis_port"]))
        tried["redis tcp PING"] = redis(redis_tcp, "PING")
        tried["redis tcp AUTH guessed"] = redis(redis_tcp, "AUTH", "guessed-password")
        tried["redis tcp CONFIG SET dir"] = redis(redis_tcp, "CONFIG", "SET", "dir", "/tmp")
        tried["redis tcp PUBLISH"] = redis(redis_tcp, "PUBLISH", "prices", "1")
    if "redis_socket" in doors:
        tried["redis unix socket"] = unix_connect(doors["redis_socket"])
        tried["redis folder"] = listing(doors["redis_dir"])
        tried["redis.conf"] = read(doors["redis_conf"])
    if "nginx_port" in doors:
        tried["nginx websocket"] = http(int(doors["nginx_port"]), path, websocket=True)
    if "worker_port" in doors:
        tried["worker websocket"] = http(int(doors["worker_port"]), path, websocket=True)
        tried["worker http"] = http(int(doors["worker_port"]), doors.get("http_path", "/"), websocket=False)
    if "tap_port" in doors:
        tried["tap websocket"] = http(int(doors["tap_port"]), path, websocket=True)
    if "report_socket" in doors:
        tried["worker report socket"] = unix_connect(doors["report_socket"])
    if "worker_pid" in doors:
        tried["worker environment"] = read(f"/proc/{doors['worker_pid']}/environ")
    return tried


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
