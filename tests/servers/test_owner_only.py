"""Who owns a connection, as the lab's servers ask Linux before they serve it (``ws_leakcheck.owner_only``)."""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from helpers.servers import serve, stop_current
from tests.support.own_loop import run
from ws_leakcheck import owner_only
from ws_leakcheck.owner_only import FORWARDED_CLIENT, OwnerOnly, scope_is_ours, tcp_owner

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the owner check reads Linux's tables")


@pytest.fixture
def connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        with client, accepted:
            yield client, accepted


def test_a_connection_made_by_this_process_is_owned_by_this_user(connection):
    client, accepted = connection
    assert tcp_owner(client.getsockname(), accepted.getsockname()) == os.geteuid()
    assert owner_only.socket_is_ours(accepted)


def test_proc_net_tcp_names_the_same_owner_as_the_socket_diagnostics(connection):
    client, accepted = connection
    local, remote = client.getsockname(), accepted.getsockname()
    assert owner_only._owner_by_proc(local, remote) == owner_only._owner_by_netlink(local, remote) == os.geteuid()


def test_a_connection_that_does_not_exist_has_no_owner(connection):
    _, accepted = connection
    assert tcp_owner(("127.0.0.1", 1), accepted.getsockname()) is None


def scope(client: socket.socket, server: socket.socket, headers: Sequence[tuple[bytes, bytes]] = ()) -> dict[str, Any]:
    return {"type": "websocket", "client": client.getsockname(), "server": server.getsockname(),
            "headers": list(headers)}


def test_a_scope_from_this_users_connection_is_ours(connection):
    client, accepted = connection
    assert scope_is_ours(scope(client, accepted))


def test_a_relayed_client_that_names_no_real_connection_is_refused(connection):
    client, accepted = connection
    forged = [(FORWARDED_CLIENT.encode(), b"127.0.0.1:1 127.0.0.1:2")]
    assert not scope_is_ours(scope(client, accepted, forged))


def test_a_relayed_client_of_this_user_is_ours(connection):
    client, accepted = connection
    relayed = f"{client.getsockname()[0]}:{client.getsockname()[1]} 127.0.0.1:{accepted.getsockname()[1]}"
    assert scope_is_ours(scope(client, accepted, [(FORWARDED_CLIENT.encode(), relayed.encode())]))


@pytest.mark.fast
def test_a_tcp_scope_without_its_addresses_is_not_known_to_be_ours():
    assert not scope_is_ours({"type": "http", "client": None, "server": ("127.0.0.1", 8000), "headers": []})


@pytest.mark.fast
def test_a_unix_socket_scope_is_left_to_the_files_permissions():
    assert scope_is_ours({"type": "http", "client": None, "server": ("/run/app.sock", None), "headers": []})


@pytest.mark.fast
def test_the_middleware_refuses_a_websocket_before_accepting_it():
    sent: list[dict[str, Any]] = []
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    unknown: dict[str, Any] = {"type": "websocket", "client": None, "server": ("127.0.0.1", 8000), "headers": []}
    run(OwnerOnly(app)(unknown, receive, send))
    assert reached == [] and sent == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.fast
def test_the_middleware_lets_lifespan_through():
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    run(OwnerOnly(app)({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert reached == ["lifespan"]


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


HELLO_APP = Starlette(routes=[Route("/", hello)])


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn", "granian", "daphne"])
def test_a_lab_server_serves_its_owner_whatever_x_forwarded_for_says(server):
    # configurable-http-proxy (JupyterHub) adds X-Forwarded-For, and jupyter-server-proxy passes it on; a server
    # that trusted it would name a client that no socket has, and refuse the owner.
    served = serve("tests.servers.test_owner_only:HELLO_APP" if server == "daphne" else HELLO_APP, server=server)
    try:
        asked = urllib.request.Request(f"http://127.0.0.1:{served.port}/", headers={"X-Forwarded-For": "10.1.2.3"})
        with urllib.request.urlopen(asked, timeout=10) as answer:
            assert (answer.status, answer.read()) == (200, b"hello")
    finally:
        stop_current()
