"""Real WebSocket clients (the ``websockets`` library) that leave in chosen ways.

Ways of leaving, as a server sees them:

- ``clean``: a close frame and the closing handshake, like a browser tab closing normally.
- ``fin``: the TCP connection ends without a close frame (a killed process, a proxy timing out).
- ``rst``: the connection is reset (SO_LINGER 0 then close): a crashed peer, a dropped NAT entry.
- ``silent``: the client stops reading and never answers pings, while its TCP stack still
  acknowledges: a frozen tab, a stuck consumer. (A suspended laptop or a cut cable acknowledges
  nothing; TCP drops such a peer after about 15 min once the server sends. Not simulated here.)
- ``slow``: the client stays but reads only one message every ``SLOW_READ_INTERVAL`` seconds.

All clients run on one background event loop, so they keep working while a cell blocks.
Every client the lab opens is tracked, and ``close_all()`` releases them (the experiment
calls it on exit, on error and on KeyboardInterrupt).
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import socket
import struct
import termios
import time
from collections import deque
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from helpers.errors import LabError
from helpers.loopthread import LoopThread
from ws_leakcheck import clients as checker_clients

Leave = Literal["clean", "fin", "rst", "silent", "slow"]
WAYS_OF_LEAVING: tuple[str, ...] = get_args(Leave)
"""The checker's ways (``ws_leakcheck.clients.WAYS``, which does the leaving), and the lab's ``slow``."""
SLOW_READ_INTERVAL = 0.5
CALL_TIMEOUT = 30.0
"""Seconds a call into the clients' loop (a send, a hold, a leave) may wait before it is abandoned: a bound for a
stuck loop, not a wait. Generous: on a loaded host, that loop also reads for every other client of the kernel."""


@dataclass(eq=False)
class Client:
    """One real ``websockets`` client of the lab: how many messages it received, and how it left (None: it is
    still connected). ``slow`` clients read one message every ``SLOW_READ_INTERVAL`` seconds."""

    number: int
    connection: ClientConnection
    received: int = 0
    left: Leave | None = None
    reader: asyncio.Task[None] | None = field(default=None, repr=False)
    slow: bool = False
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=2000), repr=False)
    closed_at: float | None = None
    """When (``time.monotonic()``) this client's reader saw the connection close; None: not seen (or not reading)."""

    @property
    def closed_by_server(self) -> bool:
        """The server closed this client while it was still listening (e.g. a ping timeout)."""
        return self.left is None and self.connection.close_code is not None

    @property
    def close_code(self) -> int | None:
        return self.connection.close_code

    def send_text(self, text: str) -> None:
        """Send one text message from this client, and wait until it is written."""
        _client_loop().call(self.connection.send(text), CALL_TIMEOUT)

    def unread_bytes(self) -> int:
        """Bytes the server sent that wait, unread, in this client's socket buffer."""
        sock = self.connection.transport.get_extra_info("socket")
        if sock is None or sock.fileno() < 0:
            return 0
        try:
            waiting: int = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
            return waiting
        except OSError:  # closed meanwhile
            return 0

    def hold_reading(self, hold: bool = True) -> None:
        """Stop reading from the socket (``hold=True``) while staying connected, or start again: a client that
        cannot keep up. What the server sends meanwhile piles up in the buffers in between."""

        async def switch() -> None:
            if hold and self.reader is not None:
                await self._stop_reader()  # nothing consumes: the library stops reading once its queue is full
            elif not hold and self.reader is None:
                self.reader = asyncio.create_task(self._read())

        _client_loop().call(switch(), CALL_TIMEOUT)

    def restart_reading(self) -> bool:
        """Start a new reader in place of the current one; True if that one had ended (with an error: it is
        re-raised nowhere, so a reader that died would otherwise leave the client silently not reading)."""

        async def restart() -> bool:
            old = self.reader
            died = old is not None and old.done() and not old.cancelled() and old.exception() is not None
            await self._stop_reader()
            self.reader = asyncio.create_task(self._read())
            return died

        return _client_loop().call(restart(), CALL_TIMEOUT)

    async def _stop_reader(self) -> None:
        """Cancel the reader and wait until its receive has ended: a receive still running would make the next
        reader's fail at once (websockets' ConcurrencyError), and that reader's task would die unseen."""
        reader, self.reader = self.reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.wait([reader])

    @property
    def close_reason(self) -> str | None:
        return self.connection.close_reason

    def longest_gap(self, since: float = 0.0) -> float:
        """The longest wait, in seconds, between two messages received after ``since`` (monotonic)."""
        times = [t for t in self.arrivals if t >= since]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    async def _read(self) -> None:
        try:
            async for _ in self.connection:
                self.received += 1
                self.arrivals.append(time.monotonic())
                if self.slow:
                    await asyncio.sleep(SLOW_READ_INTERVAL)
        except ConnectionClosed:
            pass
        self.closed_at = time.monotonic()

    async def _leave(self, how: Leave) -> None:
        self.left = how
        if how == "slow":
            self.slow = True
            return
        if self.reader is not None and how != "clean":
            self.reader.cancel()
        await checker_clients.leave(self.connection, how)

    def _abort(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        checker_clients.reset(self.connection.transport)


class ClientGroup(Sequence[Client]):
    """The clients opened by one ``connect`` call."""

    def __init__(self, clients: list[Client]) -> None:
        self._clients = clients

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        found = self._clients[index]
        return ClientGroup(found) if isinstance(found, list) else found

    def __len__(self) -> int:
        return len(self._clients)

    def received(self) -> int:
        """How many messages the group's clients have received, all together."""
        return sum(c.received for c in self._clients)

    def closed_by_server(self) -> list[Client]:
        return [c for c in self._clients if c.closed_by_server]

    def __repr__(self) -> str:
        return f"<ClientGroup of {len(self)}>"


_loop: LoopThread | None = None
_open: set[Client] = set()
_numbers = 0


def _client_loop() -> LoopThread:
    global _loop
    if _loop is None or not _loop.is_alive():
        _loop = LoopThread("lab-clients")
    return _loop


async def _socket_with_rcvbuf(url: str, rcvbuf: int) -> socket.socket:
    """A TCP socket connected to the URL's host, with a receive buffer fixed before connecting (no autotuning)."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return sock


async def _open_one(url: str, number: int, timeout: float, rcvbuf: int | None = None) -> Client:
    try:
        sock = await _socket_with_rcvbuf(url, rcvbuf) if rcvbuf else None
        connection = await ws_connect(url, ping_interval=None, open_timeout=timeout, close_timeout=1.0, sock=sock,
                                      max_queue=1 if rcvbuf else 16, compression=None if rcvbuf else "deflate")
    except InvalidStatus as error:
        status = error.response.status_code
        raise LabError(f"The server answered the WebSocket handshake at {url} with HTTP {status}; "
                       "is that a WebSocket route?") from None
    except (ConnectionRefusedError, OSError) as error:
        raise LabError(f"Could not connect to {url}: {error.strerror or error}; is the lab server running?") from None
    except (InvalidHandshake, TimeoutError) as error:
        raise LabError(f"The WebSocket handshake at {url} failed: {error!r}.") from None
    client = Client(number, connection)
    client.reader = asyncio.create_task(client._read())
    return client


def _open_many(url: str, n: int, timeout: float, rcvbuf: int | None = None) -> Coroutine[Any, Any, list[Client]]:
    global _numbers
    if n < 1:
        raise LabError(f"Number of clients must be at least 1, not {n}.")
    first = _numbers
    _numbers += n

    async def open_all() -> list[Client]:
        results = await asyncio.gather(*(_open_one(url, first + i, timeout, rcvbuf) for i in range(n)),
                                       return_exceptions=True)
        opened = [r for r in results if isinstance(r, Client)]
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            for client in opened:
                client._abort()
            raise failures[0]
        _open.update(opened)
        return opened

    return open_all()


def connect(url: str, n: int = 1, *, timeout: float = 5.0, rcvbuf: int | None = None) -> ClientGroup:
    """Open ``n`` clients to ``url`` at once and wait for them; each keeps reading until told to leave.

    ``rcvbuf`` fixes each client's socket receive buffer in bytes (loopback buffers otherwise grow to
    megabytes), lets the client library hold one unread message, not 16, and turns compression off,
    so that a client that stops reading (``hold_reading``) fills its buffers after a few messages."""
    return ClientGroup(_client_loop().call(_open_many(url, n, timeout, rcvbuf), timeout + 2.0))


async def connect_async(url: str, n: int = 1, *, timeout: float = 5.0) -> ClientGroup:
    """``connect`` for a cell that must not block the kernel's loop (a server running on that loop)."""
    future = _client_loop().submit(_open_many(url, n, timeout))
    return ClientGroup(await asyncio.wait_for(asyncio.wrap_future(future), timeout + 2.0))


def leave(clients: Client | Iterable[Client], how: Leave) -> None:
    """Make the clients leave, all at once, in one way."""
    if how not in WAYS_OF_LEAVING:
        raise LabError(f"Unknown way of leaving {how!r}; choose one of {', '.join(WAYS_OF_LEAVING)}.")
    group = [clients] if isinstance(clients, Client) else list(clients)

    async def leave_all() -> None:
        await asyncio.gather(*(c._leave(how) for c in group))

    _client_loop().call(leave_all(), CALL_TIMEOUT)
    if how in ("clean", "fin", "rst"):
        _open.difference_update(group)


def open_clients() -> int:
    """Clients the lab has opened and not yet released (including silent and slow ones)."""
    return len(_open)


def close_all() -> int:
    """Reset every client the lab still holds open; return how many there were."""
    if not _open or _loop is None:
        _open.clear()
        return 0
    holding = list(_open)
    _open.clear()

    async def abort_all() -> None:
        for client in holding:
            client._abort()
        await asyncio.sleep(0)

    _loop.call(abort_all(), CALL_TIMEOUT)
    return len(holding)
