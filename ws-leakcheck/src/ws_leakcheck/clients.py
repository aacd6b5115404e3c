"""The checker's clients: real ``websockets`` clients that connect with a script, then leave in one way.

A script is what a real client does before it goes: headers (auth, cookies), a subprotocol, a
query string in the path, and text messages sent in order after connecting. The ways of leaving
are clean (a close frame), FIN (the TCP connection closed without one), RST (reset) and silent
(connected, but no longer reading or answering pings).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ws_leakcheck.config import Script
from ws_leakcheck.loop import LoopThread

CHECKED_WAYS = ("clean", "fin", "rst", "silent")
"""The ways the checker's clients leave, each in a batch of its own (all of them by default)."""


@dataclass
class Session:
    """One scripted client of the checker: its connection (None: refused, and why), and what it received."""

    connection: ClientConnection | None
    refused: str | None = None
    """Why the handshake failed (e.g. ``HTTP 403``), or None."""
    received: int = 0
    reader: asyncio.Task[None] | None = field(default=None, repr=False)
    message: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    """Set by each message received (cleared when the script is sent)."""


async def _read(session: Session) -> None:
    assert session.connection is not None
    try:
        async for _ in session.connection:
            session.received += 1
            session.message.set()
    except ConnectionClosed:
        pass


async def _open(url: str, script: Script, timeout: float) -> Session:
    try:
        connection = await ws_connect(
            url, ping_interval=None, open_timeout=timeout, close_timeout=1.0,
            additional_headers=list(script.headers) or None,
            subprotocols=list(script.subprotocols) or None,  # type: ignore[arg-type]
        )
    except InvalidStatus as error:
        return Session(None, f"HTTP {error.response.status_code}")
    except (InvalidHandshake, TimeoutError, OSError) as error:
        return Session(None, f"{type(error).__name__}: {error}")
    session = Session(connection)
    session.reader = asyncio.create_task(_read(session))
    return session


def reset(transport: asyncio.BaseTransport) -> None:
    """End a connection with a TCP reset (SO_LINGER 0, then abort): a crashed peer, a dropped NAT entry."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.fileno() >= 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # type: ignore[attr-defined]  # a socket transport's


async def leave(connection: ClientConnection, way: str) -> None:
    """Leave in one of ``CHECKED_WAYS``: the one definition of the ways of leaving, the checker's and the lab's.

    ``clean`` sends a close frame and waits for the closing handshake; ``fin`` closes the TCP connection without
    one; ``rst`` resets it; ``silent`` stays connected but stops reading (and so answering pings). Whoever reads
    the connection stops first for every way but ``clean``.
    """
    if way == "clean":
        with contextlib.suppress(ConnectionClosed):
            await connection.close()
    elif way == "fin":
        connection.transport.close()
    elif way == "rst":
        reset(connection.transport)
    elif way == "silent":
        connection.transport.pause_reading()
    else:
        raise ValueError(f"Unknown way of leaving {way!r}: clean, fin, rst or silent.")


async def _leave(session: Session, way: str) -> None:
    if session.connection is None:
        return
    if session.reader is not None and way != "clean":
        session.reader.cancel()
    await leave(session.connection, way)


class Clients:
    """One batch of clients on the checker's client loop."""

    def __init__(self, loop: LoopThread, url: str, n: int, script: Script, timeout: float = 5.0) -> None:
        self.loop = loop

        async def open_all() -> list[Session]:
            return list(await asyncio.gather(*(_open(url, script, timeout) for _ in range(n))))

        self.sessions: list[Session] = loop.call(open_all(), timeout + 2.0)

    @property
    def connected(self) -> int:
        return sum(1 for s in self.sessions if s.connection is not None)

    def refusals(self) -> list[str]:
        return [s.refused for s in self.sessions if s.refused]

    def closed_by_server(self) -> int:
        return sum(1 for s in self.sessions if s.connection is not None and s.connection.close_code is not None)

    def close_codes(self) -> dict[int, int]:
        """Close code -> how many of these connections the server closed with it (before they left)."""
        codes: dict[int, int] = {}
        for session in self.sessions:
            code = session.connection.close_code if session.connection is not None else None
            if code is not None:
                codes[code] = codes.get(code, 0) + 1
        return codes

    def await_replies(self, timeout: float) -> None:
        """Wait until every open client received a message since ``send``, or was closed, or ``timeout`` seconds:
        the app has answered what it was sent before the clients leave."""

        async def replied(session: Session) -> None:
            assert session.connection is not None
            waits = [asyncio.ensure_future(session.message.wait()),
                     asyncio.ensure_future(session.connection.wait_closed())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()

        async def bounded() -> None:
            open_ = [s for s in self.sessions if s.connection is not None]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(replied(s) for s in open_)), timeout)

        self.loop.call(bounded(), timeout + 5.0)

    def send(self, messages: Sequence[str]) -> int:
        """Send each message in order from every client still open; how many sends failed."""

        async def send_all() -> int:
            failed = 0
            for session in self.sessions:
                session.message.clear()
            for text in messages:
                for session in self.sessions:
                    if session.connection is None:
                        continue
                    try:
                        await session.connection.send(text)
                    except ConnectionClosed:
                        failed += 1
            return failed

        return self.loop.call(send_all(), 10.0) if messages else 0

    def leave(self, way: str) -> None:
        async def leave_all() -> None:
            await asyncio.gather(*(_leave(s, way) for s in self.sessions))

        self.loop.call(leave_all(), 5.0)

    def release(self) -> None:
        """Reset whatever is still open (silent clients) and drop every reference."""

        async def reset_all() -> None:
            for session in self.sessions:
                if session.reader is not None:
                    session.reader.cancel()
                if session.connection is not None:
                    reset(session.connection.transport)
            await asyncio.sleep(0)

        self.loop.call(reset_all(), 5.0)
        self.sessions = []
