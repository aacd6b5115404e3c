"""A deploy, measured: how long a real server process takes to exit after Ctrl-C (SIGINT).

Each measurement starts one worker process (``helpers.stack.workers``), opens raw-socket
WebSocket clients on one endpoint, lets them leave (or keeps them connected), sends SIGINT as a
deploy or a Ctrl-C would, and records the seconds until the process exited, or that it was
still running when the measurement gave up. Clients that stayed report the close code the
server sent them, if any.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from helpers.errors import LabError
from helpers.stack.processes import HOST
from helpers.stack.workers import Server, Worker
from helpers.waiting import settled, wait_until

Departure = Literal["fin", "connected"]


@dataclass(frozen=True)
class Shutdown:
    """One worker stopped by SIGINT while clients were connected: how long it took, and what the clients saw."""

    server: str
    endpoint: str
    departure: Departure
    graceful_timeout: float | None
    handlers_at_signal: int
    """Handlers running when SIGINT was sent (one per client still connected)."""
    seconds: float | None
    """Seconds from SIGINT to the process's exit; None: still running after ``gave_up_after``."""
    gave_up_after: float
    """Seconds after SIGINT at which the lab stopped waiting and killed the process."""
    closes: tuple[str, ...]
    """What each client that stayed saw: a close code and its reason, "no close frame" (the TCP
    connection ended without one) or "nothing" (within ``gave_up_after``)."""
    last_log_line: str
    """The worker's last log line before it exited (or when the lab gave up)."""

    @property
    def outcome(self) -> str:
        return (f"still running at {self.gave_up_after:.0f} s" if self.seconds is None
                else f"exited after {self.seconds:.2f} s")


def raw_websocket(port: int, path: str) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            raise LabError(f"The server closed the connection to {path} during the WebSocket handshake.")
        answer += chunk
    status = answer.split(b"\r\n")[0].decode(errors="replace")
    if " 101 " not in status:
        raise LabError(f"{path} did not accept a WebSocket: {status}.")
    return sock


def _close_frame(sock: socket.socket, timeout: float) -> str:
    """The code and reason of the first close frame the server sends (frames before it are skipped)."""
    sock.settimeout(timeout)
    buffer = b""
    try:
        while True:
            while len(buffer) >= 2:
                length = buffer[1] & 0x7F
                offset = 2 + {126: 2, 127: 8}.get(length, 0)
                if len(buffer) < offset:
                    break
                if length == 126:
                    length = struct.unpack("!H", buffer[2:4])[0]
                elif length == 127:
                    length = struct.unpack("!Q", buffer[2:10])[0]
                if len(buffer) < offset + length:
                    break
                opcode, payload = buffer[0] & 0x0F, buffer[offset:offset + length]
                buffer = buffer[offset + length:]
                if opcode == 0x8:
                    if len(payload) < 2:
                        return "1005 (no code)"
                    reason = payload[2:].decode(errors="replace")
                    return (f"{struct.unpack('!H', payload[:2])[0]} {reason!r}" if reason
                            else str(struct.unpack("!H", payload[:2])[0]))
            chunk = sock.recv(65536)
            if not chunk:
                return "no close frame"
            buffer += chunk
    except TimeoutError:
        return "nothing"
    except ConnectionResetError:
        return "no close frame"


def _settled_handlers(worker: Worker, settle: float, longest: float = 5.0) -> int:
    """The worker's live handlers once the count has not changed for ``settle`` seconds (at most ``longest`` more)."""
    return settled(worker.handlers, settle, longest)


def measure_shutdown(
    server: Server,
    endpoint: str,
    *,
    app: str = "helpers.apps.production:app",
    clients: int = 3,
    departure: Departure = "fin",
    graceful_timeout: float | None = None,
    settle: float = 0.5,
    give_up_after: float = 8.0,
) -> Shutdown:
    """Serve ``app`` in one ``server`` process, connect ``clients`` to ``endpoint``, then SIGINT it."""
    with Worker(app, server, graceful_timeout=graceful_timeout) as worker:
        sockets = [raw_websocket(worker.port, endpoint) for _ in range(clients)]
        if wait_until(lambda: worker.handlers() == clients, timeout=10.0) is None:
            raise LabError(f"{endpoint} on {server} did not run {clients} handlers.")
        if departure == "fin":
            for sock in sockets:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        handlers = _settled_handlers(worker, settle)  # what a deploy finds: the clients left a moment ago, or stay
        started = time.monotonic()
        worker.child.signal(signal.SIGINT)
        closes: list[str] = []
        readers = [threading.Thread(target=lambda s=sock: closes.append(_close_frame(s, give_up_after)), daemon=True)
                   for sock in (sockets if departure == "connected" else [])]
        for reader in readers:
            reader.start()
        exited = worker.child.wait(give_up_after)
        seconds = None if exited is None else time.monotonic() - started
        for reader in readers:
            reader.join(give_up_after)
        for sock in sockets:
            sock.close()
        lines = [line for line in worker.output().splitlines() if line.strip()]
        worker.stop(timeout=0.5)  # measured; a process still waiting is killed
    return Shutdown(server, endpoint, departure, graceful_timeout, handlers, seconds, give_up_after,
                    tuple(sorted(closes)), lines[-1].strip() if lines else "")


@dataclass(frozen=True)
class Case:
    """One deploy to measure: a server, an endpoint, how the clients are at SIGINT, and the graceful timeout."""

    server: Server
    endpoint: str
    departure: Departure = "fin"
    graceful_timeout: float | None = None


def measure_cases(cases: list[Case], *, give_up_after: float = 5.0) -> list[Shutdown]:
    """Measure ``cases`` side by side, one server process each; the results in the order of ``cases``."""
    with concurrent.futures.ThreadPoolExecutor(max(1, len(cases))) as pool:
        return list(pool.map(lambda case: measure_shutdown(
            case.server, case.endpoint, departure=case.departure, graceful_timeout=case.graceful_timeout,
            give_up_after=give_up_after), cases))


_background: concurrent.futures.ThreadPoolExecutor | None = None
_pending: dict[tuple[tuple[Case, ...], float], concurrent.futures.Future[list[Shutdown]]] = {}


def start_cases(cases: list[Case], *, give_up_after: float = 5.0) -> concurrent.futures.Future[list[Shutdown]]:
    """``measure_cases``, started in the background, so that a notebook goes on while the deploys wait out their
    ``give_up_after``; ``.result()`` waits for them. A start while the same cases still run (a cell run again)
    returns that measurement."""
    global _background
    key = (tuple(cases), give_up_after)
    running = _pending.get(key)
    if running is not None and not running.done():
        return running
    if _background is None:
        _background = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="deploys-in-the-background")
    _pending[key] = _background.submit(measure_cases, cases, give_up_after=give_up_after)
    return _pending[key]


def _log_line(result: Shutdown) -> str:
    line = " ".join(result.last_log_line.split())
    if "Running on" in line or not line:
        return "nothing after start-up"
    return line if len(line) <= 70 else line[:69] + "…"


def table(results: list[Shutdown]) -> str:
    """The results as a Markdown table (``IPython.display.Markdown`` renders it in a notebook)."""
    columns = ("server", "endpoint", "clients at SIGINT", "handlers at SIGINT", "after SIGINT", "clients saw",
               "last log line")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in results:
        setting = "" if r.graceful_timeout is None else f", graceful timeout {r.graceful_timeout:g} s"
        clients = "gone (FIN)" if r.departure == "fin" else "connected"
        outcome = r.outcome if r.seconds is not None else f"**{r.outcome}**"
        lines.append(f"| {r.server}{setting} | `{r.endpoint}` | {clients} | {r.handlers_at_signal} | {outcome} "
                     f"| {', '.join(r.closes) or '-'} | {_log_line(r)} |")
    return "\n".join(lines)


def shutdown_from_json(data: dict[str, Any]) -> Shutdown:
    return Shutdown(**{**data, "closes": tuple(data["closes"])})


def main(argv: list[str]) -> int:
    """``python -m helpers.experiments.deploys '{"cases": [...], "give_up_after": 3}'``: what
    ``helpers.experiments.interpreters`` runs in another Python; prints the results as one JSON list."""
    if len(argv) != 1:
        print(main.__doc__, file=sys.stderr)
        return 2
    request = json.loads(argv[0])
    cases = [Case(**case) for case in request["cases"]]
    results = measure_cases(cases, give_up_after=float(request["give_up_after"]))
    print(json.dumps([asdict(result) for result in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
