"""A TCP relay in front of a worker that records how each connection reaching it ended: FIN or RST.

The app cannot tell: uvicorn hands it the same ``websocket.disconnect`` code for both, and
hypercorn the same code for every way of leaving. So the lab listens where the app listens,
one hop before it: the tap accepts a connection, opens one to the worker, copies bytes both
ways, and when the incoming side ends it records how (``recv`` returned nothing: a FIN; it
raised ``ConnectionResetError``: an RST) and ends the worker's side the same way. Put one in
front of a worker, point clients (or nginx) at the tap, and read ``ends()``.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter

from helpers.stack.processes import HOST
from ws_leakcheck.owner_only import socket_is_ours

CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    """End with an RST (SO_LINGER 0, then close); SHUT_RD first wakes a thread blocked reading it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    sock.close()


class Tap:
    """Listens on a free loopback port and relays every connection to ``target`` (a loopback port)."""

    def __init__(self, target: int, name: str = "tap") -> None:
        self.target = target
        self.name = name
        self._ends: list[str] = []
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept_forever, name=f"lab-{name}", daemon=True).start()

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://{HOST}:{self.port}{path}"

    def ends(self) -> list[str]:
        """How each connection that reached the tap ended, in order: "FIN" or "RST"."""
        with self._lock:
            return list(self._ends)

    def counts(self) -> Counter[str]:
        return Counter(self.ends())

    def stop(self) -> None:
        """Stop listening and reset every connection still relayed (nothing of it outlives the stack)."""
        self._stopped = True
        self._listener.close()
        with self._lock:
            held, self._open = list(self._open), set()
        for sock in held:
            _reset(sock)

    def _accept_forever(self) -> None:
        while True:
            try:
                incoming, _ = self._listener.accept()
            except OSError:
                return
            if not socket_is_ours(incoming):  # another user of this machine
                _reset(incoming)
                continue
            try:
                outgoing = socket.create_connection((HOST, self.target))
            except OSError:
                _reset(incoming)
                continue
            with self._lock:
                if self._stopped:
                    _reset(incoming)
                    _reset(outgoing)
                    return
                self._open.update((incoming, outgoing))
            pumps_left = [2]  # the second direction to end closes both sockets
            threading.Thread(target=self._pump, args=(incoming, outgoing, True, pumps_left), daemon=True).start()
            threading.Thread(target=self._pump, args=(outgoing, incoming, False, pumps_left), daemon=True).start()

    def _pump(self, source: socket.socket, destination: socket.socket, record: bool, pumps_left: list[int]) -> None:
        """Copy until ``source`` ends, then end ``destination`` the same way (FIN or RST)."""
        how = "FIN"
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                destination.sendall(data)
        except ConnectionResetError:
            how = "RST"
        except OSError:  # the other direction (or stop()) already closed one of them
            how = "closed"
        if record and how != "closed":
            with self._lock:
                self._ends.append(how)
        try:
            if how == "RST":
                _reset(destination)
            else:
                destination.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self._lock:
            pumps_left[0] -= 1
            if pumps_left[0]:
                return
            self._open.discard(source)
            self._open.discard(destination)
        source.close()
        destination.close()

    def __repr__(self) -> str:
        return f"<Tap {self.name} {HOST}:{self.port} -> {self.target}>"
