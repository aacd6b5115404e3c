"""Only the user who started a server may use it: another user on the same host is refused.

Loopback is shared by every user of a machine: on a JupyterHub that runs its learners on one
host, any learner can connect to any ``127.0.0.1`` port. Linux knows which user owns each end of
a TCP connection (``ss -e`` shows it); the lab asks, through the kernel's socket-diagnostics
interface (``NETLINK_SOCK_DIAG``, one exact lookup per connection, about 30 µs), and reads
``/proc/net/tcp`` where that interface is missing. Standard library only: the checker's agent, the lab's stack
workers and daphne's agent import it in the server's interpreter. The lab's servers and the checker's use it.

* ``OwnerOnly`` wraps an ASGI app: an HTTP request or a WebSocket handshake from another user's
  process is refused (HTTP 403) before the app sees it. A request relayed by a proxy of ours
  (nginx) names its client in ``FORWARDED_CLIENT``; the client behind it is checked too.
* ``socket_is_ours`` does the same for a raw accepted socket (the stack's taps).

Where Linux cannot say (another system), nothing is refused: ``CHECKS_OWNER`` tells which.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Address = tuple[str, int]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

FORWARDED_CLIENT = "x-lab-client"
"""The header in which the lab's nginx names the client it relays (``$remote_addr:$remote_port``)
and, after a space, the address it accepted it on (``$server_addr:$server_port``)."""
REFUSED = "This server belongs to another user of this machine; it answers only its owner's processes."

CHECKS_OWNER = sys.platform.startswith("linux")

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NO_COOKIE = 0xFFFFFFFF
_ALL_STATES = 0xFFFFFFFF


def _packed(host: str) -> tuple[int, bytes]:
    address = ipaddress.ip_address(host)
    if address.version == 4:
        return socket.AF_INET, address.packed + bytes(12)
    return socket.AF_INET6, address.packed


def _owner_by_netlink(local: Address, remote: Address) -> int | None:
    family, source = _packed(local[0])
    _, destination = _packed(remote[0])
    socket_id = (struct.pack(">HH", local[1], remote[1]) + source + destination
                 + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE))
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, _ALL_STATES) + socket_id
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as diag:
        diag.settimeout(1.0)
        diag.sendto(header + request, (0, 0))
        reply = diag.recv(65536)
    if struct.unpack_from("=H", reply, 4)[0] == _NLMSG_ERROR:
        return None  # no such socket (the client is gone)
    # struct inet_diag_msg: 4 bytes, the 48-byte socket id, then expires, rqueue, wqueue, uid.
    return int(struct.unpack_from("=I", reply, 16 + 4 + 48 + 12)[0])


def _proc_address(address: Address) -> str:
    family, packed = _packed(address[0])
    raw = packed[:4] if family == socket.AF_INET else packed
    # /proc/net/tcp prints each 32-bit word of the address in the host's byte order.
    words = "".join(f"{struct.unpack('=I', raw[i:i + 4])[0]:08X}" for i in range(0, len(raw), 4))
    return f"{words}:{address[1]:04X}"


def _owner_by_proc(local: Address, remote: Address) -> int | None:
    family, _ = _packed(local[0])
    table = Path("/proc/net/tcp" if family == socket.AF_INET else "/proc/net/tcp6")
    wanted = (_proc_address(local), _proc_address(remote))
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == wanted:
            return int(fields[7])
    return None


def tcp_owner(local: Address, remote: Address) -> int | None:
    """The uid owning the TCP socket whose own address is ``local`` and whose peer is ``remote``;
    None when there is no such socket (it has closed) or this system cannot say."""
    if not CHECKS_OWNER:
        return None
    try:
        return _owner_by_netlink(local, remote)
    except OSError:
        return _owner_by_proc(local, remote)


def _is_ours(client: Address, server: Address) -> bool:
    return tcp_owner(client, server) == os.geteuid()


def _address(text: str) -> Address | None:
    host, _, port = text.strip().rpartition(":")
    try:
        return str(ipaddress.ip_address(host.strip("[]"))), int(port)
    except ValueError:
        return None


def _forwarded_client_is_ours(scope: Scope) -> bool:
    """The client a proxy of ours relays (``FORWARDED_CLIENT``) is this user's, or there is none."""
    for name, value in scope.get("headers", ()):
        if name.decode("latin-1").lower() == FORWARDED_CLIENT:
            client, _, proxy = value.decode("latin-1").partition(" ")
            client_address, proxy_address = _address(client), _address(proxy)
            return client_address is not None and proxy_address is not None and _is_ours(client_address,
                                                                                         proxy_address)
    return True


def scope_is_ours(scope: Scope) -> bool:
    """Whether the connection of this HTTP or WebSocket scope comes from this user's processes."""
    if not CHECKS_OWNER:
        return True
    client, server = scope.get("client"), scope.get("server")
    if server is not None and server[1] is None:
        return True  # a Unix socket (path, None): its file's permissions decide
    if not client or not server:
        return False  # a TCP connection whose ends the server did not say: not known to be ours
    return (_is_ours((str(client[0]), int(client[1])), (str(server[0]), int(server[1])))
            and _forwarded_client_is_ours(scope))


def socket_is_ours(accepted: socket.socket) -> bool:
    """Whether the peer of an accepted TCP socket is a process of this user."""
    if not CHECKS_OWNER:
        return True
    try:
        peer, own = accepted.getpeername(), accepted.getsockname()
    except OSError:
        return False
    return _is_ours((peer[0], peer[1]), (own[0], own[1]))


class OwnerOnly:
    """ASGI middleware: another user's HTTP requests and WebSocket handshakes get HTTP 403."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope_is_ours(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})  # before accept: the handshake gets 403
            return
        body = REFUSED.encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
